"""Image replication: signed hv:imagelist lists verified and synced into Glance."""

from importlib.metadata import version

__version__ = version("fedcloud-cloudkeeper")
