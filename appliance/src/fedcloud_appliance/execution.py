"""One run of one job, as recorded and shown in ``appliance status``.

Kept as a plain value: the runner fills it in, the history stores it, the
status views read it. Output is capped so a chatty job cannot fill the disk
of the state volume.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Literal

from fedcloud_common.faults import cut
from fedcloud_common.summary import parse_summary

Outcome = Literal["ok", "partial", "failed", "skipped", "running"]
Trigger = Literal["schedule", "manual", "catch-up", "retry"]
OUTPUT_LIMIT = 64 * 1024
# How much of a crashed job's last line goes into its one-line reason.
REASON_LIMIT = 200


@dataclasses.dataclass
class Execution:
    job: str
    trigger: Trigger
    started: datetime.datetime
    finished: datetime.datetime | None = None
    outcome: Outcome = "running"
    exit_code: int | None = None
    reason: str = ""
    summary: str = ""
    output: str = ""
    container: str = ""

    @property
    def duration_s(self) -> float | None:
        if self.finished is None:
            return None
        return (self.finished - self.started).total_seconds()

    def finish(self, exit_code: int | None, output: str, reason: str = "") -> Execution:
        """Close the record: outcome from the exit code and the job's summary line."""
        self.finished = _now()
        self.exit_code = exit_code
        self.output = cap(output)
        # The job's own verdict is its last summary line.
        last = next(
            (
                (line, parsed)
                for line in reversed(output.splitlines())
                if (parsed := parse_summary(line))
            ),
            None,
        )
        self.summary = last[0].strip() if last else ""
        if exit_code == 0:
            self.outcome = last[1][1] if last else "ok"  # type: ignore[assignment]
        else:
            self.outcome = "failed"
        if not reason and last:
            # The job's own one-line reason (the summary's `-- reason`).
            reason = last[1][2].get("reason", "")
        if not reason and exit_code != 0:
            reason = f"exit status {exit_code}"
            # No verdict of its own (it crashed): its last words say why.
            said = [line.strip() for line in output.splitlines() if line.strip()]
            if not last and said:
                reason += f": {cut(said[-1], REASON_LIMIT)}"
        self.reason = reason
        return self

    def skip(self, reason: str) -> Execution:
        self.finished = self.started
        self.outcome = "skipped"
        self.reason = reason
        return self


def cap(output: str, limit: int = OUTPUT_LIMIT) -> str:
    """The tail of ``output``: the end of a log is where the failure is."""
    if len(output) <= limit:
        return output
    return f"[... {len(output) - limit} characters cut ...]\n" + output[-limit:]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def start(job: str, trigger: Trigger) -> Execution:
    return Execution(job=job, trigger=trigger, started=_now())
