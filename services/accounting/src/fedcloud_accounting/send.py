"""The 6-hourly send job: spool → sign → deliver → remove.

``run()`` checks the host credentials, clears stale locks, then walks the
spool once: each message is locked, checked, signed (and encrypted when a
server certificate is configured), delivered in batches and removed only
once the endpoint accepted it. A message the endpoint did not take is
unlocked and stays for the next run; a message that can never be accepted
(unreadable, not an APEL message, too large) is moved to the quarantine
directory so it stops blocking nothing but itself. Exit 0 only when the
spool was emptied.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from cryptography import x509

from fedcloud_accounting import config, smime, transports
from fedcloud_accounting.errors import CertificateError, DeliveryError, EndpointDownError
from fedcloud_accounting.spool import Spool, ensure
from fedcloud_accounting.transports import Outgoing, Transport
from fedcloud_common.settings.accounting import SendSettings
from fedcloud_common.summary import format_summary

JOB = "apel-send"
# The headers of what cASO writes: cloud, public IP, accelerator, storage.
_TEXT_HEADERS = (b"APEL-cloud-message:",)
_JSON_TYPES = ("APEL Public IP message", "APEL-accelerator-message")
_MAX_MESSAGE_BYTES = 1_000_000 * 3 // 4  # AMS's 1 MB limit, after base64
InFlight = tuple[list[Outgoing], "Future[None]"]


@dataclasses.dataclass
class Tally:
    sent: int = 0
    quarantined: int = 0
    failed: int = 0
    stale_locks: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)


def problem_with(body: bytes) -> str | None:
    """Why ``body`` can never be accepted by APEL, or None if it looks sendable."""
    if not body.strip():
        return "empty"
    if len(body) > _MAX_MESSAGE_BYTES:
        return f"{len(body)} bytes, over the endpoint's 1 MB limit"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        return f"not UTF-8 ({error.reason} at byte {error.start})"
    if body.startswith(_TEXT_HEADERS):
        records = text.split("\n", 1)[1].split("\n%%\n") if "\n" in text else []
        if not records or not all("VMUUID:" in r and "SiteName:" in r for r in records):
            return "cloud message with a record lacking VMUUID or SiteName"
        return None
    if body.lstrip().startswith(b"<"):
        return None if b"StorageUsageRecord" in body else "XML that is not a StAR message"
    try:
        kind = json.loads(text).get("Type")
    except (ValueError, AttributeError):
        return "not an APEL message (unknown header)"
    return None if kind in _JSON_TYPES else f"unknown JSON message type {kind!r}"


class SendJob:
    def __init__(self, settings: SendSettings, transport: Transport | None = None) -> None:
        self.config = settings
        self.transport = transport

    def run(self) -> int:
        """Check credentials → deliver the spool → summary; returns the exit code."""
        began = time.monotonic()
        tally = Tally()
        ensure(self.config.spool_dir)
        spool = Spool(self.config.spool_dir, self.config.quarantine_dir)
        try:
            signer = smime.load_signer(
                self.config.cert,
                self.config.key,
                datetime.timedelta(hours=self.config.min_cert_validity_h),
            )
        except CertificateError as error:
            tally.errors.append(str(error))
            return self._finish(tally, spool, began)
        tally.stale_locks = spool.clear_stale_locks(self.config.stale_lock_s)
        server = smime.load_cert(self.config.server_cert) if self.config.server_cert else None
        transport = self.transport or transports.load(self.config)
        try:
            with transport:
                self.deliver(spool, transport, signer, server, tally)
        except EndpointDownError as error:
            tally.errors.append(str(error))
        return self._finish(tally, spool, began)

    def deliver(
        self,
        spool: Spool,
        transport: Transport,
        signer: smime.Signer,
        server: x509.Certificate | None,
        tally: Tally,
    ) -> None:
        """Sign the next batch while the previous one is on the wire.

        One worker thread owns the transport, so at most one batch is in
        flight; the main thread claims, checks and signs meanwhile. Whatever
        is claimed but not accepted is unlocked before this returns or raises.
        """
        held: list[Outgoing] = []  # claimed and signed, not yet handed over
        size = 0
        in_flight: InFlight | None = None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="apel-send") as pool:
            try:
                for name in spool.names():
                    if not spool.claim(name):
                        continue
                    body = spool.read(name)
                    problem = problem_with(body)
                    if problem is not None:
                        where = spool.quarantine(name, problem)
                        tally.quarantined += 1
                        tally.errors.append(f"quarantined {name} ({problem}) to {where}")
                        continue
                    payload = signer.sign(body)
                    if server is not None:
                        payload = smime.encrypt(payload, server)
                    held.append(Outgoing(name, payload))
                    size += len(payload)
                    if len(held) > 1 and size > transport.max_batch_bytes:
                        in_flight = self._launch(
                            pool, spool, transport, in_flight, held[:-1], tally
                        )
                        held, size = held[-1:], len(payload)
                    if len(held) >= transport.max_batch:
                        in_flight = self._launch(pool, spool, transport, in_flight, held, tally)
                        held, size = [], 0
                if held:
                    in_flight = self._launch(pool, spool, transport, in_flight, held, tally)
                    held = []
                self._settle(spool, in_flight, tally)
            except EndpointDownError:
                for message in held:
                    spool.release(message.msg_id)
                raise

    def _launch(
        self,
        pool: ThreadPoolExecutor,
        spool: Spool,
        transport: Transport,
        in_flight: InFlight | None,
        batch: list[Outgoing],
        tally: Tally,
    ) -> InFlight:
        """Settle the batch on the wire, then put ``batch`` there."""
        self._settle(spool, in_flight, tally)
        batch = list(batch)
        return batch, pool.submit(transport.send, batch)

    def _settle(self, spool: Spool, in_flight: InFlight | None, tally: Tally) -> None:
        """Remove what the endpoint accepted; unlock (keep) what it did not."""
        if in_flight is None:
            return
        batch, future = in_flight
        try:
            future.result()
        except DeliveryError as error:
            for message in batch:
                spool.release(message.msg_id)
            tally.failed += len(batch)
            if isinstance(error, EndpointDownError):
                raise
            tally.errors.append(str(error))
            return
        for message in batch:
            spool.accept(message.msg_id)
        tally.sent += len(batch)

    def _finish(self, tally: Tally, spool: Spool, began: float) -> int:
        kept = spool.count()
        for error in tally.errors:
            print(f"{JOB}: {error}", file=sys.stderr)
        if not tally.errors and not kept:
            outcome = "ok"
        elif tally.sent:
            outcome = "partial"
        else:
            outcome = "failed"
        in_quarantine = spool.quarantined()
        counts = {
            "sent": tally.sent,
            "kept": kept,
            "quarantined": tally.quarantined,
            # Every message still set aside, this run's or earlier ones': the
            # status page keeps asking for attention until someone deals with them.
            "in_quarantine": in_quarantine,
            "stale_locks": tally.stale_locks,
            "errors": len(tally.errors),
        }
        reason = ""
        if tally.errors:
            more = len(tally.errors) - 1
            reason = tally.errors[0] + (f" (and {more} more)" if more else "")
        elif kept:
            reason = f"{kept} message(s) left in the spool for the next run"
        elapsed = time.monotonic() - began
        print(format_summary(JOB, outcome, counts, elapsed, reason), flush=True)
        return 0 if outcome == "ok" else 1


def main(config_path: Path) -> int:
    settings = config.load(config_path).send
    os.environ.update(settings.environment)  # requests reads the proxy from here
    return SendJob(settings).run()
