"""Information system: cloud-info-provider output published as GLUE 2.1 in slapd."""

from importlib.metadata import version

__version__ = version("fedcloud-bdii")
