"""Errors the information system raises on purpose (see fedcloud_common.errors)."""

from __future__ import annotations

from fedcloud_common.errors import FedcloudError


class BdiiError(FedcloudError):
    msg_fmt = "information system error"


class ProviderOutputError(BdiiError):
    msg_fmt = "provider output rejected, tree left untouched: {problem}"


class ProviderRunError(BdiiError):
    msg_fmt = "provider run failed, last good data kept: {problem}"
