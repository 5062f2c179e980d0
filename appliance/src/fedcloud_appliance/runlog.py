"""One line per job run in the supervisor's log: what ran, how it went, why.

Operators read ``docker logs`` (or journald) first, so every run ends with
one structured line there -- text ``key=value`` by default, JSON for log
collectors (``supervisor.log_format: json``) -- runs started by hand with
``appliance run`` included: that command runs in another process of the
supervisor's container (``docker exec``), so it writes its line to the
container's main output too.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Literal

from fedcloud_appliance.execution import Execution

LOG = logging.getLogger("appliance.runs")
LogFormat = Literal["text", "json"]
# The container's main process's output, which `docker logs` shows.
CONTAINER_OUTPUT = Path("/proc/1/fd/1")


def fields(record: Execution) -> dict[str, object]:
    duration = record.duration_s
    return {
        "job": record.job,
        "trigger": record.trigger,
        "outcome": record.outcome,
        "duration_s": round(duration, 1) if duration is not None else None,
        "exit_code": record.exit_code,
        "reason": record.reason or None,
        "summary": record.summary or None,
        "container": record.container or None,
    }


def line(record: Execution, log_format: LogFormat = "text") -> str:
    values = fields(record)
    if log_format == "json":
        return json.dumps({"event": "job-run", **values}, sort_keys=False)
    parts = ["job-run"]
    for key, value in values.items():
        if value is None or key == "summary":
            continue
        text = str(value)
        parts.append(f"{key}={json.dumps(text) if ' ' in text or not text else text}")
    return " ".join(parts)


class RunLog:
    """Writes each run's line; in a side process, to the container's output too."""

    def __init__(self, log_format: LogFormat = "text", side_process: bool | None = None) -> None:
        self.log_format = log_format
        if side_process is None:
            side_process = os.getpid() != 1 and Path("/.dockerenv").exists()
        self.side_process = side_process

    def __call__(self, record: Execution) -> None:
        text = line(record, self.log_format)
        LOG.info("%s", text)
        if self.side_process:
            try:
                with CONTAINER_OUTPUT.open("a") as output:
                    output.write(text + "\n")
            except OSError:
                pass  # not in a container after all: our own output has it
