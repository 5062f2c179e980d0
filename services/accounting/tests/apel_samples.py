"""APEL cloud messages as cASO's ssm messenger writes them, for spool tests."""

from __future__ import annotations

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


def vm_uuids(body: str) -> set[str]:
    return {line.split(": ", 1)[1] for line in body.splitlines() if line.startswith("VMUUID: ")}
