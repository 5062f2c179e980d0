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


def test_a_job_runs_hardened_read_only_with_a_private_tmp_and_no_capabilities(client):
    record = run(
        client,
        spec(
            "touch /etc/x 2>&1 | tail -1; echo tmp > /tmp/ok && cat /tmp/ok; "
            "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status"
        ),
    )
    assert record.outcome == "ok", record.output
    assert "Read-only file system" in record.output
    assert "tmp\n" in record.output
    assert "CapEff:\t0000000000000000" in record.output
    assert "NoNewPrivs:\t1" in record.output


def test_a_capability_a_job_needs_is_the_only_one_it_keeps(client):
    record = run(client, spec("grep CapEff /proc/self/status", capabilities=("DAC_OVERRIDE",)))
    assert "CapEff:\t0000000000000002" in record.output  # CAP_DAC_OVERRIDE is bit 1


def test_a_restarted_supervisor_reads_the_real_outcome_of_a_run_it_left(client):
    """A supervisor started this container, labelled as it does, then died."""
    from fedcloud_appliance.docker_run import labels

    job = spec("sleep 3; echo 'runner-test ok applied=1 duration=3.0s'")
    left = execution.start(job.name, "schedule")
    container = client.containers.create(
        IMAGE, list(job.command[1:]), entrypoint=list(job.command[:1]), labels=labels(job, left)
    )
    container.start()
    followed = DockerRunner(client).reattach(job, left)
    assert followed is not None
    assert (followed.outcome, followed.summary) == ("ok", "runner-test ok applied=1 duration=3.0s")
    assert followed.container == container.name
    assert not client.containers.list(
        all=True, filters={"label": "eu.egi.fedcloud.job=runner-test"}
    )


def test_a_run_whose_container_is_gone_is_not_found(client):
    gone = execution.start("runner-test", "schedule")
    assert DockerRunner(client).reattach(spec("true"), gone) is None


def test_exited_job_containers_of_this_project_are_reaped_others_kept(client):
    ours = spec("true", project="reap-test")
    other = spec("true", project="someone-else")
    kept = execution.start(ours.name, "schedule")
    made = []
    for job, record in (
        (ours, execution.start(ours.name, "schedule")),
        (ours, kept),
        (other, execution.start(other.name, "schedule")),
    ):
        from fedcloud_appliance.docker_run import labels

        container = client.containers.create(IMAGE, ["true"], labels=labels(job, record))
        container.start()
        container.wait(timeout=30)
        made.append(container)
    try:
        removed = DockerRunner(client).reap("reap-test", keep={kept.started.isoformat()})
        assert removed == 1
        left = {c.id for c in client.containers.list(all=True)}
        assert made[0].id not in left and made[1].id in left and made[2].id in left
    finally:
        for container in made[1:]:
            container.remove(force=True)


def test_a_jobs_anonymous_volumes_go_with_its_container(client, tmp_path):
    """An image's VOLUME the job does not mount must not leave a volume per run."""
    image, _ = client.images.build(
        fileobj=__import__("io").BytesIO(f"FROM {IMAGE}\nVOLUME /scratch\n".encode()),
        tag="fedcloud-test/with-volume:1",
        rm=True,
    )
    try:
        before = {v.id for v in client.volumes.list()}
        record = run(client, spec("echo 'runner-test ok duration=0.0s'", image=image.id))
        assert record.outcome == "ok", record.output
        assert {v.id for v in client.volumes.list()} == before
    finally:
        client.images.remove(image.id, force=True)
