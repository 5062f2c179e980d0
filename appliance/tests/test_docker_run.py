"""The runner against the real Docker engine, with the base image as job."""

import datetime
import os
import threading

import docker
import pytest

from fedcloud_appliance import execution
from fedcloud_appliance.docker_run import DockerRunner
from fedcloud_appliance.jobspec import JobSpec, Mount

pytestmark = pytest.mark.e2e
IMAGE = os.environ.get("BASE_IMAGE", "debian:bookworm-slim")


@pytest.fixture(scope="module")
def client():
    return docker.from_env()


def spec(script: str, **changes) -> JobSpec:
    base = JobSpec(
        name="runner-test",
        image=IMAGE,
        command=("sh", "-c", script),
        schedule="0 * * * *",
        timeout=datetime.timedelta(seconds=60),
        memory="64m",
        environment=(("TZ", "UTC"),),
    )
    return JobSpec(**{**base.__dict__, **changes})


def run(client, job: JobSpec):
    return DockerRunner(client).run(job, execution.start(job.name, "manual"))


def test_a_job_that_prints_its_summary_is_ok_and_its_container_removed(client):
    record = run(client, spec("echo working; echo 'runner-test ok added=2 duration=0.1s'"))
    assert record.outcome == "ok"
    assert record.exit_code == 0
    assert record.summary == "runner-test ok added=2 duration=0.1s"
    assert "working" in record.output
    assert not client.containers.list(all=True, filters={"name": record.container})


def test_a_failing_job_is_failed_with_its_exit_status_and_output(client):
    record = run(client, spec("echo 'cannot reach keystone' >&2; exit 3"))
    assert (record.outcome, record.exit_code) == ("failed", 3)
    assert record.reason == "exit status 3: cannot reach keystone"  # its last words
    assert "cannot reach keystone" in record.output


def test_a_job_over_its_timeout_is_killed(client):
    record = run(client, spec("sleep 60", timeout=datetime.timedelta(seconds=2)))
    assert record.outcome == "failed"
    assert "timed out" in record.reason
    assert record.duration_s < 30


def test_a_missing_image_says_how_to_get_it(client):
    record = run(client, spec("true", image="fedcloud/does-not-exist:0"))
    assert record.outcome == "failed"
    assert "make images" in record.reason


def test_the_container_is_labelled_limited_and_gets_secrets_only_as_files(client, tmp_path):
    secret = tmp_path / "password"
    secret.write_text("hunter2-secret")
    os.chmod(secret, 0o600)
    job = spec(
        f"cat {secret}; sleep 3",
        mounts=(Mount(str(secret), str(secret), kind="bind"),),
    )
    seen = {}

    def inspect_while_running():
        for _ in range(100):
            found = client.containers.list(filters={"label": "eu.egi.fedcloud.job=runner-test"})
            if found:
                seen["attrs"] = found[0].attrs
                return
            threading.Event().wait(0.1)

    watcher = threading.Thread(target=inspect_while_running)
    watcher.start()
    record = run(client, job)
    watcher.join()
    attrs = seen["attrs"]
    assert attrs["Config"]["Labels"]["eu.egi.fedcloud.role"] == "job"
    assert attrs["Config"]["Labels"]["eu.egi.fedcloud.trigger"] == "manual"
    assert attrs["HostConfig"]["Memory"] == 64 * 1024 * 1024
    assert attrs["HostConfig"]["NanoCpus"] == 1_000_000_000
    assert not any("hunter2" in env for env in attrs["Config"]["Env"])
    assert "hunter2-secret" in record.output  # the job could read its secret file
