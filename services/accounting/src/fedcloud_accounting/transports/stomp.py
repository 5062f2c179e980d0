"""STOMP delivery (stomp.py): one SEND per message, each awaiting its receipt.

ssmsend waits for a receipt forever (apel/ssm#29); here each message has
``message_timeout_s`` to be receipted, after which the run stops sending
and keeps the rest for the next run.
"""

from __future__ import annotations

import threading

import stomp
import stomp.exception

from fedcloud_accounting.errors import DeliveryError, EndpointDownError
from fedcloud_accounting.transports.base import Outgoing, Transport
from fedcloud_common.secrets import read_secret


class _Receipts(stomp.ConnectionListener):  # type: ignore[misc]  # stomp.py has no types
    def __init__(self) -> None:
        self.done: dict[str, threading.Event] = {}
        self.error: str | None = None
        self.lock = threading.Lock()

    def expect(self, receipt: str) -> threading.Event:
        with self.lock:
            self.done[receipt] = event = threading.Event()
        return event

    def on_receipt(self, frame: stomp.utils.Frame) -> None:
        with self.lock:
            event = self.done.pop(frame.headers.get("receipt-id", ""), None)
        if event is not None:
            event.set()

    def on_error(self, frame: stomp.utils.Frame) -> None:
        self.error = frame.headers.get("message", "") + " " + (frame.body or "")[:200]
        with self.lock:
            for event in self.done.values():
                event.set()


class StompTransport(Transport):
    def open(self) -> None:
        cfg = self.config
        port = cfg.port or 61613
        self.target = f"STOMP {cfg.host}:{port} {cfg.destination}"
        self.conn = stomp.Connection12(
            [(cfg.host, port)],
            timeout=cfg.message_timeout_s,
            reconnect_attempts_max=1,
            heartbeats=(0, 0),
            vhost=cfg.stomp_vhost or cfg.host,
        )
        if cfg.stomp_ssl:
            self.conn.set_ssl(
                for_hosts=[(cfg.host, port)],
                key_file=str(cfg.key),
                cert_file=str(cfg.cert),
                ca_certs=str(cfg.ca_bundle) if cfg.ca_bundle else None,
            )
        self.receipts = _Receipts()
        self.conn.set_listener("receipts", self.receipts)
        password = (
            read_secret(cfg.stomp_password_file).reveal() if cfg.stomp_password_file else None
        )
        try:
            self.conn.connect(username=cfg.stomp_username, passcode=password, wait=True)
        except (stomp.exception.StompException, OSError) as error:
            raise EndpointDownError(
                target=self.target,
                reason=f"{type(error).__name__} {error} {self.receipts.error or ''}",
            ) from None
        if not self.conn.is_connected():
            raise EndpointDownError(
                target=self.target, reason=self.receipts.error or "not connected"
            )

    def close(self) -> None:
        if self.conn.is_connected():
            self.conn.disconnect()

    def send(self, batch: list[Outgoing]) -> None:
        for message in batch:
            receipt = f"fedcloud-{message.msg_id.replace('/', '-')}"
            event = self.receipts.expect(receipt)
            try:
                self.conn.send(
                    self.config.destination,
                    message.payload.decode("utf-8"),
                    headers={"empa-id": message.msg_id, "receipt": receipt},
                )
            except (stomp.exception.StompException, OSError) as error:
                raise EndpointDownError(target=self.target, reason=f"{error}") from None
            if not event.wait(self.config.message_timeout_s):
                raise EndpointDownError(
                    target=self.target,
                    reason=f"no receipt within {self.config.message_timeout_s:.0f}s",
                )
            if self.receipts.error:
                raise DeliveryError(target=self.target, reason=self.receipts.error)
