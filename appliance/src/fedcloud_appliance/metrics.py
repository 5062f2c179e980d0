"""/metrics: the appliance in Prometheus' text format, computed at each scrape.

Nothing is counted in memory as jobs run: every value is read at scrape
time from what the supervisor already records (the run history, the runs'
summary lines) and from image replication's status files, so runs started
by hand (``appliance run``, another process) count too, and the page and
the metrics never disagree.

Counters need one care: the history keeps only the last runs of each job,
so a count of its rows would stop growing. ``RunTally`` therefore counts
the runs *finished since the supervisor started*, found by the history's
row ids (which only grow): a counter that starts at zero with the process,
as Prometheus expects of counters; ``rate()`` and ``increase()`` handle the
restart. The collector is registered on a registry of its own, never on
prometheus_client's global one, so importing this module changes nothing.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import socket
import threading
import time
from collections.abc import Callable, Iterator
from importlib.metadata import version

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from fedcloud_appliance.history import History
from fedcloud_appliance.scheduler import Supervisor
from fedcloud_appliance.status import FIGURES, Appliance
from fedcloud_common.imagestatus import StatusFiles
from fedcloud_common.summary import parse_summary

OUTCOMES = ("ok", "partial", "failed", "skipped")
IMAGE_STATES = ("ok", "pending", "error")
# Summed over the runs finished since the supervisor started:
# (metric name without _total, figure in status.FIGURES, help).
SUMMED = (
    ("fedcloud_image_sync_downloaded_bytes", "bytes_downloaded", "Image bytes downloaded"),
    ("fedcloud_image_sync_uploaded_bytes", "bytes_uploaded", "Image bytes uploaded to Glance"),
    (
        "fedcloud_accounting_records_extracted",
        "records_extracted",
        "Accounting records cASO extracted into the APEL spool",
    ),
    (
        "fedcloud_accounting_messages_sent",
        "messages_sent",
        "APEL messages the accounting endpoint accepted",
    ),
    (
        "fedcloud_accounting_messages_quarantined",
        "messages_quarantined",
        "APEL messages moved to the quarantine directory (never sendable as they are)",
    ),
)
# As the newest run that reported them left them: (metric, figure, help).
LATEST = (
    ("fedcloud_bdii_entries", "bdii_entries", "Entries the last BDII publish left in the BDII"),
    (
        "fedcloud_accounting_messages_kept",
        "messages_kept",
        "APEL messages left in the spool by the last send, for the next one",
    ),
    (
        "fedcloud_accounting_messages_in_quarantine",
        "messages_in_quarantine",
        "APEL messages waiting in the quarantine directory for an operator",
    ),
)


class RunTally:
    """Runs finished since it was made, by job and outcome, and their summed summary figures.

    Made when the supervisor starts: what the history holds then is the
    baseline. Each ``update`` reads only rows it has not counted: those with
    a higher id, and those still running at the last look.
    """

    def __init__(self, history: History) -> None:
        self.history = history
        self.runs: collections.Counter[tuple[str, str]] = collections.Counter()
        self.sums: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._seen = history.last_id()
        self._open = history.running_ids()

    def update(self) -> None:
        with self._lock:
            still_open = set()
            for run in self.history.ended_since(self._seen, self._open):
                self._seen = max(self._seen, run.id)
                if run.outcome == "running":
                    still_open.add(run.id)
                    continue
                self.runs[(run.job, run.outcome)] += 1
                fields = parsed[2] if (parsed := parse_summary(run.summary)) else {}
                for figure, (figure_job, key) in FIGURES.items():
                    if figure_job == run.job and fields.get(key, "").isdigit():
                        self.sums[figure] += int(fields[key])
            self._open = still_open  # a row gone meanwhile (pruned) is not waited for


class ApplianceMetrics:
    """The collector behind /metrics; ``exposition()`` is what the web server serves."""

    def __init__(
        self,
        supervisor: Supervisor,
        appliance: Appliance | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.supervisor = supervisor
        self.appliance = appliance or Appliance()
        self.clock = clock
        self.tally = RunTally(supervisor.history)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        self.tally.update()
        yield from self._jobs()
        yield from self._figures()
        yield from self._images()
        info = GaugeMetricFamily(
            "fedcloud_appliance_info",
            "The appliance's version, site and host (always 1)",
            labels=["version", "site", "host"],
        )
        info.add_metric(
            [
                version("fedcloud-appliance"),
                self.appliance.site or "",
                self.appliance.host or socket.gethostname(),
            ],
            1,
        )
        yield info

    def _jobs(self) -> Iterator[Metric]:
        jobs = list(self.supervisor.specs)
        runs = CounterMetricFamily(
            "fedcloud_job_runs",
            "Job runs finished since the supervisor started, by outcome",
            labels=["job", "outcome"],
        )
        duration = _gauge("fedcloud_job_last_duration_seconds", "How long the last run took")
        last_outcome = _gauge(
            "fedcloud_job_last_outcome", "1 for the outcome of the last run, else 0", "outcome"
        )
        last_time = _gauge(
            "fedcloud_job_last_run_timestamp_seconds",
            "When a run of the job last ended with this outcome (Unix time)",
            "outcome",
        )
        running = _gauge("fedcloud_job_running", "1 while a run of the job is in progress")
        elapsed = _gauge("fedcloud_job_running_seconds", "How long the run in progress has taken")
        next_run = _gauge(
            "fedcloud_job_next_run_timestamp_seconds", "When the job next runs on schedule"
        )
        retry = _gauge(
            "fedcloud_job_retry_attempt", "The pending retry's attempt number (0: none pending)"
        )
        next_runs = self.supervisor.next_runs()
        now = self.clock()
        history = self.supervisor.history
        for job in jobs:
            for outcome in OUTCOMES:
                runs.add_metric([job, outcome], self.tally.runs[(job, outcome)])
            last = history.last_finished(job)
            if last is not None:
                started, finished, outcome = last
                duration.add_metric([job], (finished - started).total_seconds())
                for each in OUTCOMES:
                    last_outcome.add_metric([job, each], float(each == outcome))
            for outcome, ended in history.last_by_outcome(job).items():
                last_time.add_metric([job, outcome], ended.timestamp())
            since = history.running_since(job)
            running.add_metric([job], float(since is not None))
            elapsed.add_metric([job], max(0.0, now - since.timestamp()) if since else 0.0)
            if (at := next_runs.get(job)) is not None:
                next_run.add_metric([job], at.timestamp())
            pending = self.supervisor.retries.get(job)
            retry.add_metric([job], pending.attempt if pending else 0)
        yield from (runs, duration, last_outcome, last_time, running, elapsed, next_run, retry)

    def _figures(self) -> Iterator[Metric]:
        jobs = set(self.supervisor.specs)
        for name, figure, help_text in SUMMED:
            if FIGURES[figure][0] in jobs:
                counter = CounterMetricFamily(name, f"{help_text}, since the supervisor started")
                counter.add_metric([], self.tally.sums[figure])
                yield counter
        for name, figure, help_text in LATEST:
            job, key = FIGURES[figure]
            if job not in jobs:
                continue
            for summary in self.supervisor.history.recent_summaries(job):
                fields = parsed[2] if (parsed := parse_summary(summary)) else {}
                if fields.get(key, "").isdigit():
                    yield GaugeMetricFamily(name, help_text, value=int(fields[key]))
                    break

    def _images(self) -> Iterator[Metric]:
        state_dir = self.appliance.image_state_dir
        if state_dir is None:
            return
        files = StatusFiles(state_dir)
        checked = files.lists()
        per_state = GaugeMetricFamily(
            "fedcloud_images",
            "Images of each list by state, as image replication last recorded them",
            labels=["list", "state"],
        )
        list_ok = GaugeMetricFamily(
            "fedcloud_image_list_ok", "1 if the list's last check verified it", labels=["list"]
        )
        list_time = GaugeMetricFamily(
            "fedcloud_image_list_checked_timestamp_seconds",
            "When the list was last checked (Unix time)",
            labels=["list"],
        )
        for name in sorted(set(self.appliance.image_lists) | set(checked)):
            counts = collections.Counter[str](i.state for i in files.images(name).values())
            for state in IMAGE_STATES:
                per_state.add_metric([name, state], counts[state])
            if (check := checked.get(name)) is not None:
                list_ok.add_metric([name], float(check.state == "ok"))
                with contextlib.suppress(ValueError):  # a damaged time: no sample
                    list_time.add_metric([name], _unix(check.checked))
        yield from (per_state, list_ok, list_time)
        _, age = files.heartbeat()
        if age is not None:
            yield GaugeMetricFamily(
                "fedcloud_image_backend_heartbeat_age_seconds",
                "Seconds since cloudkeeper-os last wrote its heartbeat",
                value=age,
            )


def _gauge(name: str, help_text: str, *labels: str) -> GaugeMetricFamily:
    """A gauge labelled by job, then ``labels``."""
    return GaugeMetricFamily(name, help_text, labels=["job", *labels])


def _unix(value: str) -> float:
    parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)).timestamp()
