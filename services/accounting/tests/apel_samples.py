"""APEL cloud messages as cASO's ssm messenger writes them, for spool tests."""

from __future__ import annotations

import datetime
import uuid
from pathlib import Path

from dirq.QueueSimple import QueueSimple


def cloud_message(first: int, count: int, site: str = "TEST-SITE") -> str:
    records = []
    for n in range(first, first + count):
        records.append(
            "\n".join(
                [
                    "CloudComputeService: TEST-SITE",
                    "CloudType: caso/5.2.2 (OpenStack)",
                    "CpuCount: 2",
                    f"CpuDuration: {7200 + n}",
                    "EndTime: 0",
                    "FQAN: vo.example.eu",
                    f"MachineName: vm-{n}",
                    "Memory: 4096",
                    f"SiteName: {site}",
                    "StartTime: 1736496000",
                    "Status: started",
                    f"VMUUID: 00000000-0000-4000-8000-{n:012d}",
                    f"WallDuration: {3600 + n}",
                ]
            )
        )
    return "APEL-cloud-message: v0.4\n" + "\n%%\n".join(records)


def fill(spool: Path, messages: int, records_per_message: int = 3) -> list[str]:
    """Add ``messages`` cloud messages to a dirq spool; returns their element names."""
    queue = QueueSimple(str(spool))
    return [
        queue.add(cloud_message(m * records_per_message, records_per_message))
        for m in range(messages)
    ]


def stored_vm_uuids(endpoint: object) -> list[str]:
    """Every VMUUID the AMS stand-in stored, sorted, duplicates kept (to catch them)."""
    return sorted(
        line.split(": ", 1)[1]
        for stored in endpoint.stored()  # type: ignore[attr-defined]
        for line in stored["body"].splitlines()
        if line.startswith("VMUUID: ")
    )


def vm_uuids(body: str) -> set[str]:
    return {line.split(": ", 1)[1] for line in body.splitlines() if line.startswith("VMUUID: ")}


# --- every record type, written by cASO's own record classes and ssm messenger ---

_WHEN = datetime.datetime(2026, 11, 1, 12, 0, tzinfo=datetime.UTC)


def caso_records(kind: str, first: int, count: int, pad: int = 0) -> list[object]:
    """``count`` cASO records of ``kind``, numbered from ``first``.

    ``pad`` lengthens a free-text field, to make records of a given size.
    """
    import caso.record

    out: list[object] = []
    for n in range(first, first + count):
        uid = uuid.UUID(int=n + 1)
        common = {"site_name": "TEST-SITE", "cloud_type": "caso/5.2.2 (OpenStack)"}
        common["compute_service"] = "TEST-SITE"
        if kind == "cloud":
            out.append(
                caso.record.CloudRecord(
                    uuid=uid,
                    name=f"vm-{n}" + "x" * pad,
                    user_id="u1",
                    group_id="g1",
                    fqan="vo.example.eu",
                    status="started",
                    image_id=None,
                    user_dn="jdoe@egi.eu",
                    start_time=_WHEN,
                    end_time=None,
                    cpu_count=2,
                    memory=4096,
                    disk=40,
                    **common,
                )
            )
        elif kind == "ip":
            out.append(
                caso.record.IPRecord(
                    measure_time=_WHEN,
                    uuid=uid,
                    user_id=None,
                    user_dn="x" * pad or None,
                    group_id="g1",
                    fqan="vo.example.eu",
                    ip_version=4,
                    public_ip_count=1 + n % 3,
                    **common,
                )
            )
        elif kind == "accelerator":
            out.append(
                caso.record.AcceleratorRecord(
                    uuid=uid,
                    user_dn="jdoe@egi.eu" + "x" * pad,
                    fqan="vo.example.eu",
                    count=1,
                    available_duration=3600 + n,
                    measurement_month=11,
                    measurement_year=2026,
                    accelerator_type="GPU",
                    model="A100",
                    **common,
                )
            )
        elif kind == "storage":
            out.append(
                caso.record.StorageRecord(
                    start_time=_WHEN,
                    measure_time=_WHEN + datetime.timedelta(hours=1),
                    volume_creation=_WHEN,
                    uuid=uid,
                    name=f"vol-{n}" + "x" * pad,
                    user_id="u1",
                    group_id="g1",
                    fqan="vo.example.eu",
                    active_duration=3600,
                    status="in-use",
                    capacity=10 + n,
                    **common,
                )
            )
        else:
            raise ValueError(kind)
    return out


def caso_spool(spool: Path, records: list[object], max_size: int = 100) -> list[str]:
    """Write ``records`` with cASO's ssm messenger into ``spool``; the new names."""
    from caso.messenger import ssm
    from oslo_config import cfg

    cfg.CONF.set_override("max_size", max_size, group="ssm")
    queue = QueueSimple(str(spool))
    before = set(_names(queue))
    messenger = ssm.SSMMessenger.__new__(ssm.SSMMessenger)
    messenger.queue = queue
    try:
        messenger.push(records)
    finally:
        cfg.CONF.clear_override("max_size", group="ssm")
    return sorted(set(_names(queue)) - before)


def _names(queue: QueueSimple) -> list[str]:
    found = []
    name = queue.first()
    while name:
        found.append(name)
        name = queue.next()
    return found


def record_ids(body: str) -> set[str]:
    """The repository's key of every record in a message body, of any type."""
    from fedcloud_accounting import messages

    parsed = messages.parse(body.encode())
    return {messages.record_key(parsed.form.kind, r) for r in parsed.records}
