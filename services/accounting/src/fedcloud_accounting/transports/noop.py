"""A transport that accepts and discards: a dry run of signing and spool handling."""

from __future__ import annotations

from fedcloud_accounting.transports.base import Outgoing, Transport
from fedcloud_common.settings.accounting import SendSettings


class NoopTransport(Transport):
    max_batch = 100

    def __init__(self, config: SendSettings) -> None:
        super().__init__(config)
        self.sent: list[Outgoing] = []

    def send(self, batch: list[Outgoing]) -> None:
        self.sent.extend(batch)
