"""The appliance's own record of what has been extracted for sure, per record type.

cASO writes its per-project ``lastrun`` even when an extractor failed, so
those files cannot tell a complete window from a lost one. This file moves
only after a run the job has judged complete, and per record type: a failed
cinder run leaves the storage window where it was while VMs move on.

The previous content is kept beside it (``.prev``), written first, so a
file found empty or corrupt (a full disk, a hand edit) falls back to an
earlier point, which is always safe: records are cumulative per VM, volume
or IP, and the repository keeps the latest per key, so a window extracted
twice costs time, never correctness. The file is written at a new site's
first run, so with neither copy readable but signs of earlier runs (cASO's
lastrun files), it was lost: extraction restarts ``recovery_days`` back,
never silently from the configured first date, and the job says so.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from pathlib import Path

from fedcloud_common.files import write_json

FILE_NAME = "fedcloud-watermark.json"


@dataclasses.dataclass
class Reading:
    """Where each record type's next window starts, and any trouble found on the way."""

    until: dict[str, datetime.datetime]
    problem: str | None = None  # the one-line reason, when a fallback was used


class Watermark:
    def __init__(
        self,
        state_dir: Path,
        start_date: datetime.date,
        recovery_days: int = 7,
        now: datetime.datetime | None = None,
    ) -> None:
        self.path = Path(state_dir) / FILE_NAME
        self.prev = self.path.with_name(FILE_NAME + ".prev")
        self.traces = Path(state_dir) / "caso"  # cASO's own lastrun files
        self.start = datetime.datetime.combine(start_date, datetime.time(), datetime.UTC)
        self.recovery = datetime.timedelta(days=recovery_days)
        self._now = now

    def read(self, kinds: list[str]) -> Reading:
        """Each of ``kinds``' window start; never raises for a bad file."""
        current, why = _load(self.path)
        if current is not None:
            return Reading(self._fill(current, kinds))
        previous, why_prev = _load(self.prev)
        if previous is not None:
            return Reading(
                self._fill(previous, kinds),
                f"watermark {self.path} {why or 'is missing'}: restarted from the previous one",
            )
        if why is None and why_prev is None and not self._ran_before():
            # a new site's first run: written now, so a file missing later is
            # known to be lost, even if this first run fails
            first = dict.fromkeys(kinds, self.start)
            write_json(self.path, _dump(first))
            return Reading(first)
        now = self._now or datetime.datetime.now(datetime.UTC)
        restart = max(self.start, (now - self.recovery).replace(microsecond=0))
        what = why or "is missing though cASO ran before"
        return Reading(
            dict.fromkeys(kinds, restart),
            f"watermark {self.path} {what}: re-extracting from {restart.isoformat()} "
            f"({self.recovery.days} days back); if accounting stopped before that, "
            "run republish --from <date>",
        )

    def _fill(
        self, found: dict[str, datetime.datetime], kinds: list[str]
    ) -> dict[str, datetime.datetime]:
        # "*": a file written before types had marks of their own; a type
        # enabled since the last run starts at the configured date
        return {kind: found.get(kind, found.get("*", self.start)) for kind in kinds}

    def _ran_before(self) -> bool:
        return self.traces.is_dir() and any(self.traces.glob("lastrun.*"))

    def advance(self, until: dict[str, datetime.datetime]) -> None:
        """Record complete windows: a crash mid-write keeps the old file or its copy."""
        current, _ = _load(self.path)
        merged = dict(current or {})
        merged.update(until)
        if current is not None:
            write_json(self.prev, _dump(current))
        write_json(self.path, _dump(merged))


def _dump(marks: dict[str, datetime.datetime]) -> dict[str, object]:
    return {"extracted_until": {kind: when.isoformat() for kind, when in sorted(marks.items())}}


def _load(path: Path) -> tuple[dict[str, datetime.datetime] | None, str | None]:
    """(marks, None), or (None, why not); (None, None) when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, None
    except OSError as error:
        return None, f"is unreadable ({error.strerror})"
    if not text.strip():
        return None, "is empty"
    try:
        value = json.loads(text)["extracted_until"]
        if isinstance(value, str):  # one mark for every type, as written before types
            return {"*": _when(value)}, None
        return {str(kind): _when(when) for kind, when in dict(value).items()}, None
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        return None, f"is corrupt ({type(error).__name__}: {str(error)[:80]})"


def _when(text: object) -> datetime.datetime:
    when = datetime.datetime.fromisoformat(str(text))
    if when.tzinfo is None:
        raise ValueError(f"{text} has no time zone")
    return when
