"""The one thing a transport does: deliver a batch of messages, or say why not."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Self

from fedcloud_common.settings.accounting import SendSettings


@dataclass(frozen=True)
class Outgoing:
    msg_id: str  # the spool element name, sent as SSM's empa-id
    payload: bytes  # signed (and maybe encrypted) S/MIME text


class Transport(abc.ABC):
    """Open once per run, ``send`` batches, close.

    ``send`` returns only once the endpoint accepted every message of the
    batch; it raises ``DeliveryError`` otherwise (``EndpointDownError`` when
    nothing further can get through this run). It must return or raise
    within the configured per-message time.
    """

    max_batch = 1
    request_overhead = 0  # bytes a request adds around its messages

    def wire_bytes(self, message: Outgoing) -> int:
        """What ``message`` adds to a request, as the endpoint counts its size limit."""
        return len(message.payload)

    def __init__(self, config: SendSettings) -> None:
        self.config = config

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:  # noqa: B027 - optional hook
        """Connect or authenticate; raise EndpointDownError when that fails."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    @abc.abstractmethod
    def send(self, batch: list[Outgoing]) -> None:
        """Deliver every message of ``batch`` or raise (``TooLargeError`` on a size refusal)."""
