"""The 6-hourly send job: spool → sign → deliver → remove.

``run()`` checks the host credentials, clears stale locks, then walks the
spool once: each message is locked, checked and cut into its records;
records of one type are packed into APEL messages no larger than the
configured limit (AMS refuses anything over 1 MB, apel/ssm#155), each
signed (and encrypted when a server certificate is configured), delivered
in batches that also fit the limit. A spool message is removed only once
the endpoint accepted all its records; one partly delivered is rewritten
to the records still to go, so nothing is sent twice. A 413 from the
endpoint lowers the limit for the run and resends the refused message in
halves. A message that can never be accepted (unreadable, not an APEL
message, a single record over the limit) is moved to the quarantine
directory so it blocks nothing but itself. Exit 0 only when the spool was
emptied.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from cryptography import x509

from fedcloud_accounting import config, messages, smime, transports
from fedcloud_accounting.errors import (
    CertificateError,
    DeliveryError,
    EndpointDownError,
    TooLargeError,
)
from fedcloud_accounting.spool import Spool, ensure
from fedcloud_accounting.transports import Outgoing, Transport
from fedcloud_common.settings.accounting import SendSettings
from fedcloud_common.summary import format_summary

JOB = "apel-send"
# The packer fills a message to this share of the limit by estimate; the
# signed message's exact size is then checked, and split if still over.
_FILL = 0.98
InFlight = tuple[list["Piece"], "Future[None]"]


@dataclasses.dataclass
class Tally:
    sent: int = 0
    quarantined: int = 0
    failed: int = 0
    stale_locks: int = 0
    messages: int = 0
    records: int = 0
    too_large: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)


def problem_with(body: bytes) -> str | None:
    """Why ``body`` can never be accepted by APEL, or None if it looks sendable."""
    try:
        messages.parse(body)
    except messages.NotApelError as error:
        return str(error)
    return None


@dataclasses.dataclass(eq=False)
class Element:
    """One spool message being sent: its records, and which are settled.

    It leaves the spool once every record is delivered (or set aside); if
    only some were, it is rewritten to hold the rest, so nothing goes twice.
    """

    name: str
    form: messages.Form
    records: list[bytes]
    done: set[int] = dataclasses.field(default_factory=set)
    unsettled: int = 0

    def __post_init__(self) -> None:
        self.unsettled = len(self.records)


@dataclasses.dataclass(eq=False)
class Piece:
    """One APEL message on its way: the records it carries and where they came from."""

    outgoing: Outgoing
    form: messages.Form
    parts: list[tuple[Element, int]]  # (spool message, record index), in order
    wire: int


class Sizer:
    """How many bytes of request a message body becomes once signed (and encrypted).

    Measured once per run by signing two bodies, so the certificate, the
    signature and the encryption are all accounted for; the packer uses the
    estimate, and every sealed message is then measured exactly.
    """

    def __init__(self, seal: Callable[[bytes], bytes], transport: Transport) -> None:
        small, large = b"x\n", b"x" * 63 + b"\n"
        large *= 512
        wire_small = transport.wire_bytes(Outgoing("0" * 23, seal(small)))
        wire_large = transport.wire_bytes(Outgoing("0" * 23, seal(large)))
        self.per_byte = (wire_large - wire_small) / (_cost(large) - _cost(small))
        self.fixed = wire_small - self.per_byte * _cost(small)

    def estimate(self, cost: int) -> float:
        return self.fixed + self.per_byte * cost


def _cost(data: bytes) -> int:
    """Bytes once signed: S/MIME turns each newline into CRLF."""
    return len(data) + data.count(b"\n")


class SendJob:
    def __init__(self, settings: SendSettings, transport: Transport | None = None) -> None:
        self.config = settings
        self.transport = transport
        self.limit = settings.max_message_bytes

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
        """Pack records into messages under the limit; sign the next batch while one is sent.

        Records of consecutive spool messages of the same type share a
        message up to the size limit; a spool message too large for one is
        split on record boundaries. One worker thread owns the transport, so
        at most one batch is in flight. Whatever is claimed but not
        delivered is unlocked (rewritten to its undelivered records) before
        this returns or raises.
        """

        def seal(body: bytes) -> bytes:
            payload = signer.sign(body)
            return smime.encrypt(payload, server) if server is not None else payload

        run = _Run(self, spool, transport, seal, tally)
        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="apel-send") as pool:
                run.pool = pool
                for name in spool.names():
                    if not spool.claim(name):
                        continue
                    run.add(name, spool.read(name))
                run.flush()
                run.launch()
                run.settle()
        finally:
            run.release_all()

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
            # APEL messages published and the records in them, after packing
            "messages": tally.messages,
            "records": tally.records,
            "too_large": tally.too_large,
            "limit_bytes": self.limit,
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


class _Run:
    """One delivery pass: the packer, the held and in-flight batches, open spool messages."""

    def __init__(
        self,
        job: SendJob,
        spool: Spool,
        transport: Transport,
        seal: Callable[[bytes], bytes],
        tally: Tally,
    ) -> None:
        self.job, self.spool, self.transport, self.seal, self.tally = (
            job,
            spool,
            transport,
            seal,
            tally,
        )
        self.sizer = Sizer(seal, transport)
        self.pool: ThreadPoolExecutor | None = None
        self.open: dict[str, Element] = {}
        # the message being packed
        self.form: messages.Form | None = None
        self.parts: list[tuple[Element, int]] = []
        self.cost = 0
        # sealed messages waiting for a batch, and the batch on the wire
        self.held: list[Piece] = []
        self.held_wire = 0
        self.in_flight: InFlight | None = None

    # --- packing ---------------------------------------------------------------

    def add(self, name: str, body: bytes) -> None:
        try:
            parsed = messages.parse(body)
        except messages.NotApelError as error:
            where = self.spool.quarantine(name, str(error))
            self.tally.quarantined += 1
            self.tally.errors.append(f"quarantined {name} ({error}) to {where}")
            return
        element = Element(name, parsed.form, parsed.records)
        self.open[name] = element
        budget = self.job.limit * _FILL
        for index, record in enumerate(parsed.records):
            cost = _cost(record) + 4  # the separator between records
            if self.form != element.form or self.sizer.estimate(self.cost + cost) > budget:
                self.flush()
            self.form = element.form
            self.parts.append((element, index))
            self.cost += cost

    def flush(self) -> None:
        """Seal the message being packed (splitting it if it is still over the limit)."""
        if self.form is None or not self.parts:
            return
        form, parts = self.form, self.parts
        self.form, self.parts, self.cost = None, [], _cost(b"")
        for piece in self._seal(form, parts):
            self._hold(piece)

    def _seal(self, form: messages.Form, parts: list[tuple[Element, int]]) -> list[Piece]:
        """Signed messages for ``parts``, each under the limit; a lone record over it set aside."""
        first, index = parts[0]
        msg_id = first.name if index == 0 else f"{first.name}#{index}"
        body = form.build([element.records[i] for element, i in parts])
        outgoing = Outgoing(msg_id, self.seal(body))
        wire = self.transport.wire_bytes(outgoing)
        if wire + self.transport.request_overhead <= self.job.limit:
            return [Piece(outgoing, form, parts, wire)]
        if len(parts) > 1:
            half = len(parts) // 2
            return self._seal(form, parts[:half]) + self._seal(form, parts[half:])
        problem = f"one record of {wire} bytes signed, over the {self.job.limit}-byte limit"
        where = self.spool.quarantine_record(first.name, index, first.records[index], problem)
        self.tally.quarantined += 1
        self.tally.errors.append(
            f"quarantined record {index} of {first.name} ({problem}) to {where}"
        )
        self._settled(first, [index], delivered=True)
        return []

    # --- batching ----------------------------------------------------------------

    def _hold(self, piece: Piece) -> None:
        overhead = self.transport.request_overhead
        if self.held and (
            self.held_wire + piece.wire + overhead > self.job.limit
            or len(self.held) >= self.transport.max_batch
        ):
            self.launch()
        self.held.append(piece)
        self.held_wire += piece.wire

    def launch(self) -> None:
        """Settle the batch on the wire, then put the held one there."""
        self.settle()
        if not self.held:
            return
        batch, self.held, self.held_wire = self.held, [], 0
        assert self.pool is not None
        self.in_flight = batch, self.pool.submit(self.transport.send, [p.outgoing for p in batch])

    def settle(self) -> None:
        """Wait for the batch on the wire; record what was delivered."""
        if self.in_flight is None:
            return
        batch, future = self.in_flight
        self.in_flight = None
        try:
            future.result()
        except DeliveryError as error:
            self._refused(batch, error)
            return
        self._delivered(batch)

    def _delivered(self, batch: list[Piece]) -> None:
        for piece in batch:
            self.tally.messages += 1
            self.tally.records += len(piece.parts)
            self._settle_parts(piece, delivered=True)

    def _refused(self, batch: list[Piece], error: DeliveryError) -> None:
        if isinstance(error, TooLargeError):
            self._split_and_resend(batch, error)
            return
        for piece in batch:
            self._settle_parts(piece, delivered=False)
        self.tally.failed += len(batch)
        if isinstance(error, EndpointDownError):
            raise error
        self.tally.errors.append(str(error))

    def _split_and_resend(self, batch: list[Piece], error: TooLargeError) -> None:
        """The endpoint's limit is lower than configured: learn it, resend in smaller parts.

        Sent from this thread while nothing else is in flight; each refusal
        halves what is resent, so it ends, at worst with single records.
        """
        self.tally.too_large += 1
        size = error.fields.get("size") or sum(p.wire for p in batch)
        self.job.limit = min(self.job.limit, int(str(size)) * 3 // 4)
        if len(batch) > 1:
            smaller = [[piece] for piece in batch]
        else:
            piece = batch[0]
            half = len(piece.parts) // 2
            if half == 0:
                smaller = [self._seal(piece.form, piece.parts)]
            else:
                smaller = [
                    self._seal(piece.form, piece.parts[:half]),
                    self._seal(piece.form, piece.parts[half:]),
                ]
        for part in smaller:
            if not part:
                continue
            try:
                self.transport.send([p.outgoing for p in part])
            except DeliveryError as again:
                self._refused(part, again)
            else:
                self._delivered(part)

    # --- the spool messages -----------------------------------------------------

    def _settle_parts(self, piece: Piece, delivered: bool) -> None:
        by_element: dict[str, tuple[Element, list[int]]] = {}
        for element, index in piece.parts:
            by_element.setdefault(element.name, (element, []))[1].append(index)
        for element, indexes in by_element.values():
            self._settled(element, indexes, delivered)

    def _settled(self, element: Element, indexes: list[int], delivered: bool) -> None:
        if delivered:
            element.done.update(indexes)
        element.unsettled -= len(indexes)
        if element.unsettled == 0:
            self._close(element)

    def _close(self, element: Element) -> None:
        """Every record is settled: remove the message, or keep only what did not go."""
        del self.open[element.name]
        if len(element.done) == len(element.records):
            self.spool.accept(element.name)
            self.tally.sent += 1
            return
        if element.done:
            rest = [r for i, r in enumerate(element.records) if i not in element.done]
            self.spool.rewrite(element.name, element.form.build(rest))
        self.spool.release(element.name)

    def release_all(self) -> None:
        """After an abort: whatever is still open goes back, less what was delivered."""
        for element in list(self.open.values()):
            element.unsettled = 0
            self._close(element)


def main(config_path: Path) -> int:
    settings = config.load(config_path).send
    os.environ.update(settings.environment)  # requests reads the proxy from here
    return SendJob(settings).run()
