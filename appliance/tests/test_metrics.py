"""/metrics, scraped from the real server and parsed as Prometheus parses it."""

from __future__ import annotations

import datetime
import urllib.request

import prometheus_client
from prometheus_client.parser import text_string_to_metric_families

from appliance.tests.status_scene import SPECS, SYNC_BYTES, build, ran, summary
from fedcloud_appliance import web
from fedcloud_appliance.history import History
from fedcloud_appliance.metrics import ApplianceMetrics
from fedcloud_appliance.scheduler import Supervisor

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(metrics: ApplianceMetrics) -> tuple[Samples, str]:
    server = web.serve(0, dict, host="127.0.0.1", metrics=metrics.exposition)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics") as reply:
            kind, text = reply.headers["Content-Type"], reply.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return samples, kind


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_jobs_figures_and_images_are_read_at_scrape_time(tmp_path):
    scene = build(tmp_path)
    metrics = ApplianceMetrics(scene.supervisor, scene.appliance)
    got, kind = scrape(metrics)
    assert kind.startswith("text/plain; version=0.0.4")

    # Runs recorded before the supervisor started are its baseline, not counted.
    for job in ("image-sync", "bdii-publish", "caso-extract", "apel-send"):
        for outcome in ("ok", "partial", "failed", "skipped"):
            assert value(got, "fedcloud_job_runs_total", job=job, outcome=outcome) == 0
    # The last run: the failed publish, how long it took, when each outcome last happened.
    assert value(got, "fedcloud_job_last_duration_seconds", job="bdii-publish") == 0.4
    assert value(got, "fedcloud_job_last_outcome", job="bdii-publish", outcome="failed") == 1
    assert value(got, "fedcloud_job_last_outcome", job="bdii-publish", outcome="ok") == 0
    failed_at = value(
        got, "fedcloud_job_last_run_timestamp_seconds", job="bdii-publish", outcome="failed"
    )
    ok_at = value(got, "fedcloud_job_last_run_timestamp_seconds", job="bdii-publish", outcome="ok")
    assert failed_at == (scene.now - datetime.timedelta(minutes=6, seconds=-0.4)).timestamp()
    assert ok_at is not None and ok_at < failed_at
    assert value(got, "fedcloud_job_retry_attempt", job="bdii-publish") == 1
    assert value(got, "fedcloud_job_retry_attempt", job="caso-extract") == 0
    # The sync in progress.
    assert value(got, "fedcloud_job_running", job="image-sync") == 1
    assert 180 <= value(got, "fedcloud_job_running_seconds", job="image-sync") < 240
    assert value(got, "fedcloud_job_running", job="apel-send") == 0
    next_sync = value(got, "fedcloud_job_next_run_timestamp_seconds", job="image-sync")
    assert datetime.datetime.fromtimestamp(next_sync, datetime.UTC).hour % 4 == 0

    # From the summary lines: the failed publish counted nothing, so the one before speaks.
    assert value(got, "fedcloud_bdii_entries") == 1234
    assert value(got, "fedcloud_accounting_messages_kept") == 0
    assert value(got, "fedcloud_accounting_messages_in_quarantine") is None  # not reported yet

    # Images per list and state, from the status files.
    assert value(got, "fedcloud_images", list="egi-basic", state="ok") == 1
    assert value(got, "fedcloud_images", list="egi-basic", state="error") == 1
    assert value(got, "fedcloud_images", list="egi-basic", state="pending") == 0
    assert value(got, "fedcloud_images", list="fresh-list", state="ok") == 0
    assert value(got, "fedcloud_image_list_ok", list="egi-basic") == 1
    assert value(got, "fedcloud_image_list_ok", list="vo-demo") == 0
    assert value(got, "fedcloud_image_list_ok", list="fresh-list") is None  # never checked
    assert 0 <= value(got, "fedcloud_image_backend_heartbeat_age_seconds") < 60
    info = [key for key in got if key[0] == "fedcloud_appliance_info"]
    assert len(info) == 1 and ("site", "FEDCLOUD-DEMO") in info[0][1]


def test_runs_finished_after_start_are_counted_once_with_their_figures(tmp_path):
    scene = build(tmp_path)
    history = scene.supervisor.history
    metrics = ApplianceMetrics(scene.supervisor, scene.appliance)
    scrape(metrics)

    # The sync that was running ends (as a re-attached run is ended); new runs follow.
    ((row, sync),) = history.running()
    downloaded, uploaded = SYNC_BYTES
    sync.finish(0, summary("cloudkeeper-sync", "ok", 200.0, applied=2,
                           downloaded_bytes=downloaded, uploaded_bytes=uploaded))  # fmt: skip
    history.end(row, sync)
    now = datetime.datetime.now(datetime.UTC)
    ran(history, "bdii-publish", now, 2.0, summary("bdii-publish", "ok", 2.0, entries=1240))
    ran(history, "caso-extract", now, 30.0, summary("caso-extract", "ok", 30.0, records=50))
    ran(history, "apel-send", now, 5.0, summary(
        "apel-send", "partial", 5.0, "1 message quarantined", sent=5, kept=0, quarantined=1,
    ), exit_code=1)  # fmt: skip

    for _ in range(2):  # a second scrape counts nothing twice
        got, _ = scrape(metrics)
        assert value(got, "fedcloud_job_runs_total", job="image-sync", outcome="ok") == 1
        assert value(got, "fedcloud_job_runs_total", job="bdii-publish", outcome="ok") == 1
        assert value(got, "fedcloud_job_runs_total", job="bdii-publish", outcome="failed") == 0
        assert value(got, "fedcloud_job_runs_total", job="apel-send", outcome="failed") == 1
        assert value(got, "fedcloud_job_running", job="image-sync") == 0
        assert value(got, "fedcloud_image_sync_downloaded_bytes_total") == downloaded
        assert value(got, "fedcloud_image_sync_uploaded_bytes_total") == uploaded
        assert value(got, "fedcloud_accounting_records_extracted_total") == 50
        assert value(got, "fedcloud_accounting_messages_sent_total") == 5
        assert value(got, "fedcloud_accounting_messages_quarantined_total") == 1
        assert value(got, "fedcloud_bdii_entries") == 1240
        assert value(got, "fedcloud_job_last_outcome", job="bdii-publish", outcome="ok") == 1


def test_runs_keep_counting_when_the_history_forgets_old_ones(tmp_path):
    """The history keeps a few runs per job; the counter must not stop at that number."""

    def run(spec, record):  # type: ignore[no-untyped-def]
        return record.finish(0, summary("caso-extract", "ok", 1.0, records=7))

    history = History(tmp_path / "history.sqlite", keep_per_job=2)
    supervisor = Supervisor([SPECS[2]], run, history, tmp_path / "locks")
    metrics = ApplianceMetrics(supervisor)
    for runs in range(1, 6):
        supervisor.run_job("caso-extract", "manual")
        got, _ = scrape(metrics)
        assert value(got, "fedcloud_job_runs_total", job="caso-extract", outcome="ok") == runs
        assert value(got, "fedcloud_accounting_records_extracted_total") == 7 * runs
    assert len(history.recent("caso-extract", 10)) == 2
    # Jobs not enabled have no figures; no image replication, no image metrics.
    assert value(got, "fedcloud_bdii_entries") is None
    assert not [key for key in got if key[0].startswith("fedcloud_image")]


def test_metrics_stay_off_the_global_registry(tmp_path):
    ApplianceMetrics(build(tmp_path).supervisor)
    exposed = prometheus_client.generate_latest(prometheus_client.REGISTRY).decode()
    assert "fedcloud_" not in exposed
