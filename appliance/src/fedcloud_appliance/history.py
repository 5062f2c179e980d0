"""Job history that survives supervisor restarts (SQLite in the state dir).

SQLite rather than a log file: status needs the last run per job quickly,
catch-up after downtime needs the last start, and a crash mid-write must not
corrupt earlier records.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from fedcloud_appliance.execution import Execution

SCHEMA = """
CREATE TABLE IF NOT EXISTS executions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job TEXT NOT NULL,
    trigger TEXT NOT NULL,
    started TEXT NOT NULL,
    finished TEXT,
    outcome TEXT NOT NULL,
    exit_code INTEGER,
    reason TEXT NOT NULL,
    summary TEXT NOT NULL,
    output TEXT NOT NULL,
    container TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_job_started ON executions (job, started);
"""
FIELDS = [f.name for f in dataclasses.fields(Execution)]
_RUNNING_IDS = "SELECT id FROM executions WHERE outcome = 'running'"
_LAST_FINISHED = (
    "SELECT started, finished, outcome FROM executions WHERE job = ? AND outcome NOT IN "
    "('running', 'skipped') AND finished IS NOT NULL ORDER BY started DESC, id DESC LIMIT 1"
)
_LAST_BY_OUTCOME = (
    "SELECT outcome, MAX(finished) FROM executions WHERE job = ? AND outcome != 'running' "
    "AND finished IS NOT NULL GROUP BY outcome"
)
_RUNNING_SINCE = (
    "SELECT started FROM executions WHERE job = ? AND outcome = 'running' "
    "ORDER BY started DESC LIMIT 1"
)
_RECENT_SUMMARIES = (
    "SELECT summary FROM executions WHERE job = ? AND outcome NOT IN ('running', 'skipped') "
    "AND summary != '' ORDER BY started DESC, id DESC LIMIT ?"
)


@dataclasses.dataclass(frozen=True)
class RunEnd:
    """What the metrics count of one run: which job, how it went, its summary line."""

    id: int
    job: str
    outcome: str
    summary: str


class History:
    def __init__(self, path: Path, keep_per_job: int = 200) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.keep_per_job = keep_per_job
        with self._connect() as db:
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.row_factory = sqlite3.Row
        return db

    def begin(self, record: Execution) -> int:
        with self._connect() as db:
            cursor = db.execute(
                f"INSERT INTO executions ({', '.join(FIELDS)}) "
                f"VALUES ({', '.join('?' * len(FIELDS))})",
                _row(record),
            )
            return int(cursor.lastrowid or 0)

    def end(self, row_id: int, record: Execution) -> None:
        with self._connect() as db:
            db.execute(
                f"UPDATE executions SET {', '.join(f'{f} = ?' for f in FIELDS)} WHERE id = ?",
                (*_row(record), row_id),
            )
            db.execute(
                "DELETE FROM executions WHERE job = ? AND id NOT IN (SELECT id FROM executions"
                " WHERE job = ? ORDER BY started DESC LIMIT ?)",
                (record.job, record.job, self.keep_per_job),
            )

    def recent(self, job: str, limit: int = 10) -> list[Execution]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM executions WHERE job = ? ORDER BY started DESC, id DESC LIMIT ?",
                (job, limit),
            ).fetchall()
        return [_execution(row) for row in rows]

    def last(self, job: str) -> Execution | None:
        found = self.recent(job, 1)
        return found[0] if found else None

    def last_attempt(self, job: str) -> Execution | None:
        """The last run that really ran (skips are not attempts)."""
        with self._connect() as db:
            row = db.execute(
                "SELECT * FROM executions WHERE job = ? AND outcome != 'skipped'"
                " ORDER BY started DESC, id DESC LIMIT 1",
                (job,),
            ).fetchone()
        return _execution(row) if row else None

    def running(self) -> list[tuple[int, Execution]]:
        """Runs recorded as started and never ended: a supervisor stopped under them."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM executions WHERE outcome = 'running' ORDER BY started"
            ).fetchall()
        return [(int(row["id"]), _execution(row)) for row in rows]

    # Narrow reads for the metrics, at every scrape: never the runs' captured
    # output (tens of KiB each), and never a write lock.

    def last_id(self) -> int:
        with self._read_only() as db:
            return int(db.execute("SELECT COALESCE(MAX(id), 0) FROM executions").fetchone()[0])

    def running_ids(self) -> set[int]:
        with self._read_only() as db:
            return {row[0] for row in db.execute(_RUNNING_IDS)}

    def ended_since(self, last_id: int, watched: set[int]) -> list[RunEnd]:
        """Rows newer than ``last_id``, and the ``watched`` ones (still running before)."""
        marks = ",".join("?" * len(watched))
        with self._read_only() as db:
            rows = db.execute(
                "SELECT id, job, outcome, summary FROM executions WHERE id > ?"
                + (f" OR id IN ({marks})" if marks else ""),
                (last_id, *watched),
            ).fetchall()
        return [RunEnd(*row) for row in rows]

    def last_finished(self, job: str) -> tuple[datetime.datetime, datetime.datetime, str] | None:
        """(started, finished, outcome) of the job's last finished, real run."""
        with self._read_only() as db:
            row = db.execute(_LAST_FINISHED, (job,)).fetchone()
        return (_when(row[0]), _when(row[1]), row[2]) if row else None

    def last_by_outcome(self, job: str) -> dict[str, datetime.datetime]:
        with self._read_only() as db:
            return {
                outcome: _when(ended) for outcome, ended in db.execute(_LAST_BY_OUTCOME, (job,))
            }

    def running_since(self, job: str) -> datetime.datetime | None:
        with self._read_only() as db:
            row = db.execute(_RUNNING_SINCE, (job,)).fetchone()
        return _when(row[0]) if row else None

    def recent_summaries(self, job: str, limit: int = 20) -> list[str]:
        with self._read_only() as db:
            return [row[0] for row in db.execute(_RECENT_SUMMARIES, (job, limit))]

    @contextlib.contextmanager
    def _read_only(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            yield db
        finally:
            db.close()

    def mark_interrupted(self) -> int:
        """Runs left 'running' by a supervisor that died: record them as failed."""
        with self._connect() as db:
            cursor = db.execute(
                "UPDATE executions SET outcome = 'failed', reason = 'supervisor stopped during"
                " the run' WHERE outcome = 'running'"
            )
            return cursor.rowcount


def _row(record: Execution) -> tuple[object, ...]:
    values = dataclasses.asdict(record)
    for key in ("started", "finished"):
        values[key] = values[key].isoformat() if values[key] else None
    return tuple(values[f] for f in FIELDS)


def _execution(row: sqlite3.Row) -> Execution:
    values = dict(row)
    values.pop("id")
    for key in ("started", "finished"):
        values[key] = datetime.datetime.fromisoformat(values[key]) if values[key] else None
    return Execution(**values)


def _when(value: str) -> datetime.datetime:
    parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)
