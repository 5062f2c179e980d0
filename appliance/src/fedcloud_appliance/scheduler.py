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
- A scheduled run that fails is retried with backoff (``RetryPolicy``):
  a few times, each later than the last, never past the next scheduled
  run; ``appliance status`` shows the retry to come.
- A supervisor restarted while a job ran re-attaches to that job's
  container (found by its labels), records its real outcome and removes
  it; only a run whose container is gone is recorded as interrupted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from fedcloud_appliance import execution
from fedcloud_appliance.execution import Execution, Trigger
from fedcloud_appliance.history import History
from fedcloud_appliance.jobspec import JobSpec
from fedcloud_appliance.runlog import RunLog

LOG = logging.getLogger(__name__)
RunFn = Callable[[JobSpec, Execution], Execution]
# Follows the container of a run a stopped supervisor started (None: it is gone).
ReattachFn = Callable[[JobSpec, Execution], Execution | None]
INTERRUPTED = "supervisor stopped during the run, and its container is gone"


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Failed scheduled runs are tried again after ``first``, then twice as long, ..."""

    attempts: int = 3  # 0: wait for the next scheduled run
    first: datetime.timedelta = datetime.timedelta(minutes=5)

    def delay(self, attempt: int) -> datetime.timedelta:
        return self.first * 2 ** (attempt - 1)


@dataclasses.dataclass(frozen=True)
class PendingRetry:
    attempt: int
    of: int
    at: datetime.datetime


def trigger_for(spec: JobSpec) -> CronTrigger:
    return CronTrigger.from_crontab(spec.schedule, timezone=datetime.UTC)


def next_run(spec: JobSpec, after: datetime.datetime) -> datetime.datetime | None:
    return trigger_for(spec).get_next_fire_time(None, after)


class Supervisor:
    """Owns the jobs: runs them on schedule or on request, records every run."""

    def __init__(
        self,
        specs: list[JobSpec],
        run: RunFn,
        history: History,
        lock_dir: Path,
        reattach: ReattachFn | None = None,
        retry: RetryPolicy | None = None,
        report: Callable[[Execution], None] | None = None,
    ):
        self.specs = {spec.name: spec for spec in specs}
        self._run = run
        self._reattach = reattach
        self._report = report or RunLog()
        self.retry = retry or RetryPolicy()
        self.history = history
        self.lock_dir = lock_dir
        lock_dir.mkdir(parents=True, exist_ok=True)
        self.scheduler = BackgroundScheduler(timezone=datetime.UTC)
        self.retries: dict[str, PendingRetry] = {}
        self._retry_lock = threading.Lock()

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

    def run_job(
        self, name: str, trigger: Trigger = "manual", args: tuple[str, ...] = ()
    ) -> Execution:
        """Run a job now; ``args`` narrow this run (region-sync's region, from its API)."""
        spec = self.specs[name]
        if args:
            spec = dataclasses.replace(spec, command=(*spec.command, *args))
        record = execution.start(name, trigger)
        with self._exclusive(name) as acquired:
            if not acquired:
                record.skip("another run of this job is still in progress")
                self.history.end(self.history.begin(record), record)
                self._report(record)
                return record
            row = self.history.begin(record)
            try:
                record = self._run(spec, record)
            except Exception as error:  # a job must never take the scheduler down
                LOG.exception("job %s: runner failed", name)
                record.finish(None, "", reason=f"runner error: {error}")
            self.history.end(row, record)
        self._report(record)
        self._plan_retry(name, record)
        return record

    def _plan_retry(self, name: str, record: Execution) -> None:
        """After a failed scheduled run, one more try soon (bounded, and shown)."""
        with self._retry_lock:
            previous = self.retries.pop(name, None)
            if record.outcome not in ("failed", "partial") or record.trigger == "manual":
                return
            attempt = (previous.attempt if previous else 0) + 1
            if attempt > self.retry.attempts:
                LOG.warning("job %s: failed %d retries; next try on schedule", name, attempt - 1)
                return
            at = datetime.datetime.now(datetime.UTC) + self.retry.delay(attempt)
            scheduled = self.scheduler.get_job(name) if self.scheduler.running else None
            if scheduled is None or (scheduled.next_run_time and at >= scheduled.next_run_time):
                return  # the schedule comes first (or nothing is scheduled: a one-off run)
            self.retries[name] = PendingRetry(attempt, self.retry.attempts, at)
            self.scheduler.add_job(
                self.run_job,
                "date",
                run_date=at,
                args=(name, "retry"),
                id=f"{name}-retry",
                name=f"{name} (retry)",
                replace_existing=True,
            )
            LOG.info("job %s: retry %d of %d at %s", name, attempt, self.retry.attempts, at)

    def recover(self) -> list[threading.Thread]:
        """Runs a stopped supervisor left 'running': follow each to its real end.

        Each job's lock is taken here, before anything is scheduled, and held
        until its container is followed, so no new run of it starts meanwhile.
        """
        following = []
        for row, record in self.history.running():
            spec = self.specs.get(record.job)
            lock = self._hold(record.job) if spec and self._reattach else None
            if spec is None or lock is None:
                self.history.end(row, record.finish(None, "", reason=INTERRUPTED))
                continue
            thread = threading.Thread(
                target=self._follow, args=(spec, row, record, lock), name=f"reattach-{spec.name}"
            )
            thread.start()
            following.append(thread)
        return following

    def _follow(self, spec: JobSpec, row: int, record: Execution, lock: IO[str]) -> None:
        try:
            assert self._reattach is not None
            followed = self._reattach(spec, record) or record.finish(None, "", reason=INTERRUPTED)
        except Exception as error:  # never take the supervisor down
            LOG.exception("job %s: re-attaching failed", spec.name)
            followed = record.finish(None, "", reason=f"re-attaching failed: {error}")
        try:
            self.history.end(row, followed)
        finally:
            lock.close()
        self._report(followed)

    def _hold(self, job: str) -> IO[str] | None:
        lock = open(self.lock_dir / f"{job}.lock", "w")  # noqa: SIM115 (held across threads)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            return None
        return lock

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
        following = self.recover()
        if following:
            LOG.warning("re-attaching to %d run(s) started before a restart", len(following))
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
