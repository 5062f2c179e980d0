"""When jobs run: cron schedules, one run per job at a time, catch-up.

- APScheduler fires each job on its cron schedule (UTC), ``max_instances=1``
  and ``coalesce`` so a slow run is never stacked behind itself.
- A per-job file lock in the state dir also covers runs started by hand
  (``appliance run``) from another process: the loser is recorded as
  skipped, not run twice.
- After downtime, a job whose last attempt is older than its previous
  scheduled time runs once at start ("catch-up"), however many runs were
  missed; a job never run before runs at start too, so a new site does not
  wait hours for its first images or records. Caught-up jobs that feed one
  another run in order (``JobSpec.after``): the first BDII publish then
  shows the first images, the first send carries the first records.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from fedcloud_appliance import execution
from fedcloud_appliance.execution import Execution
from fedcloud_appliance.history import History
from fedcloud_appliance.jobspec import JobSpec

LOG = logging.getLogger(__name__)
Trigger = Literal["schedule", "manual", "catch-up"]
RunFn = Callable[[JobSpec, Execution], Execution]


def trigger_for(spec: JobSpec) -> CronTrigger:
    return CronTrigger.from_crontab(spec.schedule, timezone=datetime.UTC)


def next_run(spec: JobSpec, after: datetime.datetime) -> datetime.datetime | None:
    return trigger_for(spec).get_next_fire_time(None, after)


class Supervisor:
    """Owns the jobs: runs them on schedule or on request, records every run."""

    def __init__(self, specs: list[JobSpec], run: RunFn, history: History, lock_dir: Path):
        self.specs = {spec.name: spec for spec in specs}
        self._run = run
        self.history = history
        self.lock_dir = lock_dir
        lock_dir.mkdir(parents=True, exist_ok=True)
        self.scheduler = BackgroundScheduler(timezone=datetime.UTC)

    @contextlib.contextmanager
    def _exclusive(self, job: str) -> Iterator[bool]:
        with open(self.lock_dir / f"{job}.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def run_job(self, name: str, trigger: Trigger = "manual") -> Execution:
        spec = self.specs[name]
        record = execution.start(name, trigger)
        with self._exclusive(name) as acquired:
            if not acquired:
                record.skip("another run of this job is still in progress")
                self.history.end(self.history.begin(record), record)
                LOG.warning("job %s skipped: %s", name, record.reason)
                return record
            row = self.history.begin(record)
            try:
                record = self._run(spec, record)
            except Exception as error:  # a job must never take the scheduler down
                LOG.exception("job %s: runner failed", name)
                record.finish(None, "", reason=f"runner error: {error}")
            self.history.end(row, record)
        LOG.info("job %s %s%s", name, record.outcome, f": {record.reason}" if record.reason else "")
        return record

    def missed(self, now: datetime.datetime) -> list[str]:
        """Jobs whose last attempt predates their previous scheduled time."""
        missed = []
        for name, spec in self.specs.items():
            last = self.history.last_attempt(name)
            if last is None:
                missed.append(name)
                continue
            due = next_run(spec, last.started)
            if due is not None and due <= now:
                missed.append(name)
        return missed

    def start(self, catch_up: bool = True) -> None:
        interrupted = self.history.mark_interrupted()
        if interrupted:
            LOG.warning("%d run(s) were cut short by the last stop", interrupted)
        for name, spec in self.specs.items():
            self.scheduler.add_job(
                self.run_job,
                trigger_for(spec),
                args=(name, "schedule"),
                id=name,
                name=name,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
            )
        now = datetime.datetime.now(datetime.UTC)
        if catch_up:
            for chain in self.catch_up_chains(self.missed(now)):
                self.scheduler.add_job(
                    self._catch_up, args=(chain,), id=f"{chain[0]}-catch-up", name=chain[0]
                )
        self.scheduler.start()

    def catch_up_chains(self, missed: list[str]) -> list[list[str]]:
        """The missed jobs as sequences: each after the job its spec names, if missed too."""
        followers: dict[str, list[str]] = {}
        heads = []
        for name in missed:
            after = self.specs[name].after
            if after in missed:
                followers.setdefault(after, []).append(name)
            else:
                heads.append(name)
        chains = []
        for head in heads:
            chain, todo = [], [head]
            while todo:
                chain.append(name := todo.pop(0))
                todo += followers.get(name, [])
            chains.append(chain)
        return chains

    def _catch_up(self, chain: list[str]) -> None:
        for name in chain:
            self.run_job(name, "catch-up")

    def next_runs(self) -> dict[str, datetime.datetime | None]:
        if self.scheduler.running:
            return {
                name: (job.next_run_time if (job := self.scheduler.get_job(name)) else None)
                for name in self.specs
            }
        now = datetime.datetime.now(datetime.UTC)
        return {name: next_run(spec, now) for name, spec in self.specs.items()}

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
