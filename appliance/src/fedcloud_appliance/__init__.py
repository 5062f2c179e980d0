"""The supervisor: one config file, scheduled job containers, status."""

from importlib.metadata import version

__version__ = version("fedcloud-appliance")
