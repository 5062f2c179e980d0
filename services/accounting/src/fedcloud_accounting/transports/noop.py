"""A transport that accepts and discards: a dry run of signing and spool handling."""

from __future__ import annotations

from fedcloud_accounting.transports.base import Outgoing, Transport


class NoopTransport(Transport):
    max_batch = 100

    def __init__(self, config: object) -> None:  # type: ignore[override]
        self.config = config  # type: ignore[assignment]
        self.sent: list[Outgoing] = []

    def send(self, batch: list[Outgoing]) -> None:
        self.sent.extend(batch)
