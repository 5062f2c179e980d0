"""The APEL message forms cASO's ssm messenger writes, cut into records and rebuilt.

The sender packs records into messages that fit the broker's size limit and
splits a message the broker refused as too large, so it must take a message
apart at record boundaries and put records back together in exactly the
form the repository's loader expects for that record type:

- cloud (CloudRecord v0.4): ``APEL-cloud-message: v0.4`` then ``Key: value``
  records separated by ``%%`` lines;
- ip (v0.2) and accelerator (v0.1): JSON ``{"Type", "Version", "UsageRecords"}``;
- storage: StAR XML, ``<sr:StorageUsageRecord>`` elements under one
  ``<sr:StorageUsageRecords>`` root.

Records are kept as the bytes cASO wrote (JSON and XML records re-serialised
once, unchanged in content), so a record is never altered by being moved.
"""

from __future__ import annotations

import dataclasses
import json
import re
import xml.etree.ElementTree as ETree  # our own spool, written by cASO
from typing import Literal

Kind = Literal["cloud", "ip", "accelerator", "storage"]
CLOUD_HEADER = b"APEL-cloud-message:"
_CLOUD_SEPARATOR = b"\n%%\n"
_JSON_KINDS: dict[str, Kind] = {
    "APEL Public IP message": "ip",
    "APEL-accelerator-message": "accelerator",
}
STAR_NS = "http://eu-emi.eu/namespaces/2011/02/storagerecord"
ETree.register_namespace("sr", STAR_NS)


class NotApelError(ValueError):
    """The body is not a message the repository would load; the text says why."""


@dataclasses.dataclass(frozen=True)
class Form:
    """How one message's records are wrapped: the kind, and its header for that kind."""

    kind: Kind
    head: bytes  # cloud: the header line; JSON: the Type/Version prefix; storage: unused

    def build(self, records: list[bytes]) -> bytes:
        """One message of this form holding ``records``, in the order given."""
        if self.kind == "cloud":
            return self.head + _CLOUD_SEPARATOR.join(records) + b"\n"
        if self.kind == "storage":
            return (
                f'<sr:StorageUsageRecords xmlns:sr="{STAR_NS}">'.encode()
                + b"".join(records)
                + b"</sr:StorageUsageRecords>"
            )
        return self.head + b", ".join(records) + b"]}"


@dataclasses.dataclass(frozen=True)
class Parsed:
    form: Form
    records: list[bytes]


def parse(body: bytes) -> Parsed:
    """The form and records of ``body``; NotApelError when it is not an APEL message."""
    if not body.strip():
        raise NotApelError("empty")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise NotApelError(f"not UTF-8 ({error.reason} at byte {error.start})") from None
    if body.startswith(CLOUD_HEADER):
        head, _, rest = body.partition(b"\n")
        records = [r for r in rest.rstrip(b"\n").split(_CLOUD_SEPARATOR) if r.strip()]
        if not records or not all(b"VMUUID:" in r and b"SiteName:" in r for r in records):
            raise NotApelError("cloud message with a record lacking VMUUID or SiteName")
        return Parsed(Form("cloud", head + b"\n"), records)
    if body.lstrip().startswith(b"<"):
        return _parse_star(body)
    try:
        message = json.loads(text)
        kind = message.get("Type")
    except (ValueError, AttributeError):
        raise NotApelError("not an APEL message (unknown header)") from None
    if kind not in _JSON_KINDS:
        raise NotApelError(f"unknown JSON message type {kind!r}")
    usage = message.get("UsageRecords")
    if not isinstance(usage, list) or not usage:
        raise NotApelError(f"{kind} message without UsageRecords")
    prefix = (
        '{"Type": ' + json.dumps(kind) + ', "Version": ' + json.dumps(message.get("Version"))
    ) + ', "UsageRecords": ['
    return Parsed(
        Form(_JSON_KINDS[kind], prefix.encode()),
        [json.dumps(record).encode() for record in usage],
    )


def _parse_star(body: bytes) -> Parsed:
    try:
        root = ETree.fromstring(body)
    except ETree.ParseError as error:
        raise NotApelError(f"XML that does not parse ({error})") from None
    if root.tag not in (f"{{{STAR_NS}}}StorageUsageRecords", "sr:StorageUsageRecords"):
        raise NotApelError("XML that is not a StAR message")
    records = [
        ETree.tostring(child).replace(f' xmlns:sr="{STAR_NS}"'.encode(), b"", 1) for child in root
    ]
    if not records:
        raise NotApelError("StAR message without records")
    return Parsed(Form("storage", b""), records)


_JSON_KEY = {"ip": "uuid", "accelerator": "AssociatedRecord"}
_STAR_ID = re.compile(rb'sr:recordId="([^"]*)"')


def record_key(kind: Kind, record: bytes) -> str:
    """The identifier a record carries (VM, IP or volume UUID), for tests and reports."""
    if kind == "cloud":
        for line in record.split(b"\n"):
            if line.startswith(b"VMUUID:"):
                return line.split(b":", 1)[1].strip().decode()
        return ""
    if kind == "storage":
        found = _STAR_ID.search(record)
        return "" if found is None else found[1].decode()
    return str(json.loads(record).get(_JSON_KEY[kind], ""))
