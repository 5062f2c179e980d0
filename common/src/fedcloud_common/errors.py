"""One error base for the whole appliance.

Each error class carries a message template naming what went wrong and,
where there is one, what the operator should do about it; callers pass the
template's fields as keywords, so messages stay uniform across services.
"""

from __future__ import annotations


class FedcloudError(Exception):
    """Base of every error the appliance raises on purpose."""

    msg_fmt = "an unknown error occurred"

    def __init__(self, message: str | None = None, **fields: object) -> None:
        self.fields = fields
        if message is None:
            try:
                message = self.msg_fmt.format(**fields)
            except (KeyError, IndexError) as missing:
                message = f"{self.msg_fmt} (message field {missing} not given)"
        super().__init__(message)


class ConfigError(FedcloudError):
    """A setting is wrong. Every service and the supervisor raise this one class,
    so callers catch configuration mistakes the same way everywhere."""

    msg_fmt = "{where}: {problem}"


class SecretFileError(FedcloudError):
    msg_fmt = "secret file {path}: {problem}; {fix}"
