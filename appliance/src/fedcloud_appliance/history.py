"""Job history that survives supervisor restarts (SQLite in the state dir).

SQLite rather than a log file: status needs the last run per job quickly,
catch-up after downtime needs the last start, and a crash mid-write must not
corrupt earlier records.
"""

from __future__ import annotations

import dataclasses
import datetime
import sqlite3
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
