"""Faults of the supervisor: restarts mid-job, jobs that fail, hang or cannot start, retries.

The Docker cases (marked e2e) run job containers of the base image on the
real engine through the supervisor's ``DockerRunner``; the history is the
real SQLite file, the scheduler the real APScheduler.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from fedcloud_appliance.history import History
from fedcloud_appliance.jobspec import JobSpec
from fedcloud_appliance.scheduler import RetryPolicy, Supervisor

IMAGE = os.environ.get("BASE_IMAGE", "debian:bookworm-slim")
YEARLY = JobSpec("image-sync", "img", ("x",), "0 0 1 1 *", datetime.timedelta(hours=1))


def _spec(script: str, **changes) -> JobSpec:
    """A job of the base image, in a compose project of its own (so reaping sees only it)."""
    base = JobSpec(
        name="fault-job",
        image=IMAGE,
        command=("sh", "-c", script),
        schedule="0 0 1 1 *",
        timeout=datetime.timedelta(seconds=60),
        memory="64m",
        project=f"fault-{uuid.uuid4().hex[:8]}",
    )
    return JobSpec(**{**base.__dict__, **changes})


@pytest.fixture(scope="module")
def docker_client():
    import docker

    return docker.from_env()


def _supervisor(tmp_path, spec, client=None, **options) -> Supervisor:
    from fedcloud_appliance.docker_run import DockerRunner

    runner = DockerRunner(client)
    return Supervisor([spec], runner.run, History(tmp_path / "history.sqlite"),
                      tmp_path / "locks", reattach=runner.reattach, **options)  # fmt: skip


def _containers(client, spec):
    return client.containers.list(
        all=True, filters={"label": f"eu.egi.fedcloud.project={spec.project}"}
    )


# -- no Docker needed -------------------------------------------------------------


def test_a_failed_scheduled_run_is_retried_with_backoff_and_the_retry_is_visible(tmp_path):
    def failing(spec, record):
        return record.finish(1, "image-sync failed duration=0.1s -- cannot reach the cloud\n")

    sup = Supervisor([YEARLY], failing, History(tmp_path / "h.sqlite"), tmp_path / "locks",
                     retry=RetryPolicy(2, datetime.timedelta(minutes=5)))  # fmt: skip
    sup.start(catch_up=False)
    try:
        before = datetime.datetime.now(datetime.UTC)
        record = sup.run_job("image-sync", "schedule")
        assert (record.outcome, record.reason) == ("failed", "cannot reach the cloud")
        retry = sup.retries["image-sync"]
        assert (retry.attempt, retry.of) == (1, 2)
        assert datetime.timedelta(minutes=4) < retry.at - before <= datetime.timedelta(minutes=6)
        assert sup.scheduler.get_job("image-sync-retry").next_run_time == retry.at
        (kept,) = sup.history.recent("image-sync")
        assert (kept.outcome, kept.reason) == ("failed", "cannot reach the cloud")
    finally:
        sup.stop()


def test_a_crashing_runner_is_recorded_with_its_reason_and_the_supervisor_keeps_going(tmp_path):
    calls = []

    def broken(spec, record):
        calls.append(record.trigger)
        if len(calls) == 1:
            raise ConnectionError("Docker engine went away")
        return record.finish(0, "image-sync ok duration=0.1s\n")

    sup = Supervisor([YEARLY], broken, History(tmp_path / "h.sqlite"), tmp_path / "locks")
    assert sup.run_job("image-sync").outcome == "failed"
    assert sup.run_job("image-sync").outcome == "ok"  # the next run is not blocked
    failed, ok = sorted(sup.history.recent("image-sync"), key=lambda r: r.started)
    assert "Docker engine went away" in failed.reason and ok.outcome == "ok"


def test_a_supervisor_stopped_mid_run_without_a_reattacher_records_the_run_as_interrupted(
    tmp_path,
):
    from fedcloud_appliance import execution

    history = History(tmp_path / "h.sqlite")
    history.begin(execution.start("image-sync", "schedule"))
    sup = Supervisor([YEARLY], lambda s, r: r, history, tmp_path / "locks")
    assert sup.recover() == []
    (record,) = history.recent("image-sync")
    assert record.outcome == "failed" and "supervisor stopped during the run" in record.reason
    assert history.running() == []  # not "running" forever


# -- the real Docker engine --------------------------------------------------------


SUPERVISOR_SCRIPT = textwrap.dedent("""
    import datetime, sys
    from pathlib import Path
    from fedcloud_appliance.docker_run import DockerRunner
    from fedcloud_appliance.history import History
    from fedcloud_appliance.jobspec import JobSpec
    from fedcloud_appliance.scheduler import Supervisor
    spec = JobSpec(name="fault-job", image=sys.argv[2], command=("sh", "-c", sys.argv[3]),
                   schedule="0 0 1 1 *", timeout=datetime.timedelta(seconds=60),
                   memory="64m", project=sys.argv[4])
    runner = DockerRunner()
    tmp = Path(sys.argv[1])
    Supervisor([spec], runner.run, History(tmp / "history.sqlite"), tmp / "locks",
               reattach=runner.reattach).run_job("fault-job", "schedule")
""")


@pytest.mark.e2e
def test_a_supervisor_killed_mid_job_records_the_jobs_real_outcome_after_restart(
    tmp_path, docker_client
):
    spec = _spec("sleep 4; echo 'fault-job ok applied=1 duration=4.0s'")
    first = subprocess.Popen([sys.executable, "-c", SUPERVISOR_SCRIPT, str(tmp_path), IMAGE,
                              spec.command[2], spec.project])  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not [c for c in _containers(docker_client, spec) if c.status == "running"]:
            assert time.monotonic() < deadline, "the job container never started"
            time.sleep(0.2)
    finally:
        first.kill()  # SIGKILL: the supervisor dies mid-job, its container runs on
        first.wait()
    history = History(tmp_path / "history.sqlite")
    assert [r.job for _, r in history.running()] == ["fault-job"]
    restarted = _supervisor(tmp_path, spec, docker_client)
    for thread in restarted.recover():
        thread.join(60)
    (record,) = [r for r in history.recent("fault-job") if r.outcome != "skipped"]
    assert (record.outcome, record.summary) == ("ok", "fault-job ok applied=1 duration=4.0s")
    assert history.running() == []
    assert _containers(docker_client, spec) == []  # read, then removed: none piles up


@pytest.mark.e2e
def test_a_supervisor_restarted_after_its_job_container_vanished_records_interrupted(
    tmp_path, docker_client
):
    from fedcloud_appliance import execution

    spec = _spec("true")
    history = History(tmp_path / "history.sqlite")
    history.begin(execution.start(spec.name, "schedule"))  # its container is gone
    for thread in _supervisor(tmp_path, spec, docker_client).recover():
        thread.join(30)
    (record,) = history.recent(spec.name)
    assert record.outcome == "failed"
    assert record.reason == "supervisor stopped during the run, and its container is gone"


@pytest.mark.e2e
def test_a_job_over_its_timeout_is_killed_removed_and_recorded_as_timed_out(
    tmp_path, docker_client
):
    spec = _spec("sleep 120", timeout=datetime.timedelta(seconds=2))
    began = time.monotonic()
    record = _supervisor(tmp_path, spec, docker_client).run_job(spec.name)
    assert time.monotonic() - began < 30
    assert record.outcome == "failed" and "timed out" in record.reason
    assert _containers(docker_client, spec) == []


@pytest.mark.e2e
def test_a_job_whose_image_is_missing_fails_saying_run_make_images(tmp_path, docker_client):
    spec = _spec("true", image="fedcloud/does-not-exist:0")
    record = _supervisor(tmp_path, spec, docker_client).run_job(spec.name)
    assert record.outcome == "failed"
    assert record.reason == "image fedcloud/does-not-exist:0 is not on this host; run make images"
    assert History(tmp_path / "history.sqlite").recent(spec.name)[0].reason == record.reason


@pytest.mark.e2e
def test_a_failing_jobs_summary_reason_is_what_the_supervisor_records(tmp_path, docker_client):
    reason = "disk full in /var/spool/apel: free space there (df -h) or grow the disk"
    spec = _spec(f"echo 'Traceback: noise' >&2; echo 'fault-job failed errors=1 duration=0.1s "
                 f"-- {reason}'; exit 1")  # fmt: skip
    record = _supervisor(tmp_path, spec, docker_client).run_job(spec.name, "manual")
    assert (record.outcome, record.exit_code, record.reason) == ("failed", 1, reason)
    assert History(tmp_path / "history.sqlite").recent(spec.name)[0].reason == reason
    assert _containers(docker_client, spec) == []


@pytest.mark.e2e
def test_a_job_that_dies_without_a_summary_is_failed_with_its_exit_status_and_last_words(
    tmp_path, docker_client
):
    spec = _spec("echo 'cannot reach keystone' >&2; exit 3")
    record = _supervisor(tmp_path, spec, docker_client).run_job(spec.name, "manual")
    assert (record.outcome, record.exit_code) == ("failed", 3)
    assert record.reason == "exit status 3: cannot reach keystone"
