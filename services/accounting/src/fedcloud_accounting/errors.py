"""The accounting service's errors: one base, each naming the operator's fix.

A wrong setting is ``fedcloud_common.errors.ConfigError``, as in every service.
"""

from __future__ import annotations

from fedcloud_common.errors import FedcloudError


class AccountingError(FedcloudError):
    msg_fmt = "accounting failed: {reason}"


class CertificateError(AccountingError):
    msg_fmt = "host certificate {cert} / key {key}: {problem}; {fix}"


class DeliveryError(AccountingError):
    msg_fmt = "delivery to {target} failed: {reason}"


class EndpointDownError(DeliveryError):
    """The endpoint cannot be reached at all: trying further messages is pointless."""


class TooLargeError(DeliveryError):
    """The endpoint refused the request as too large (AMS: HTTP 413): split and resend."""

    msg_fmt = "delivery to {target} failed: {size} bytes refused as too large ({reason})"
