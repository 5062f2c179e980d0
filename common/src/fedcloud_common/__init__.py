"""Code shared by the FedCloud appliance's supervisor and services.

Only what more than one package needs lives here: the error base, reading
secrets from files, and the one-line run summary every job prints.
"""

from importlib.metadata import version

__version__ = version("fedcloud-common")
