"""Accounting: cASO extraction into the APEL spool and signed delivery."""

from importlib.metadata import version

__version__ = version("fedcloud-accounting")
