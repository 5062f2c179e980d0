"""The swarm runner against the real engine on a single-node swarm, the base image as job."""

import datetime
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace

import docker
import pytest

from fedcloud_appliance import execution
from fedcloud_appliance.execution import Execution
from fedcloud_appliance.jobspec import JobSpec
from fedcloud_appliance.swarm_run import SwarmRunner, in_swarm_task, service_options

IMAGE = os.environ.get("BASE_IMAGE", "debian:bookworm-slim")
PROJECT = "swarm-run-test"
e2e = pytest.mark.e2e


@pytest.fixture(scope="module")
def client() -> Iterator[docker.DockerClient]:
    """The engine as a single-node swarm (left again afterwards, if this made it one)."""
    engine = docker.from_env()
    made = engine.info()["Swarm"]["LocalNodeState"] != "active"
    if made:
        subprocess.run(
            ["docker", "swarm", "init", "--advertise-addr", "127.0.0.1"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
    try:
        yield engine
    finally:
        for project in (PROJECT, "someone-else"):
            for service in engine.services.list(filters=job_filter(project)):
                service.remove()
            for container in engine.containers.list(all=True, filters=job_filter(project)):
                container.remove(force=True)
        if made:
            subprocess.run(["docker", "swarm", "leave", "--force"], capture_output=True, timeout=60)


def spec(script: str, **changes) -> JobSpec:
    base = JobSpec(
        name="swarm-test",
        image=IMAGE,
        command=("sh", "-c", script),
        schedule="0 * * * *",
        timeout=datetime.timedelta(seconds=90),
        memory="64m",
        environment=(("TZ", "UTC"),),
        project=PROJECT,
    )
    return JobSpec(**{**base.__dict__, **changes})


def run(client, job: JobSpec) -> Execution:
    return SwarmRunner(client, poll_s=0.2).run(job, execution.start(job.name, "manual"))


def job_filter(project: str = PROJECT) -> dict[str, list[str]]:
    return {"label": [f"eu.egi.fedcloud.project={project}", "eu.egi.fedcloud.role=job"]}


def leftovers(client, project: str = PROJECT) -> list:
    """This project's job services and job containers: none once a run is read."""
    return client.services.list(filters=job_filter(project)) + client.containers.list(
        all=True, filters=job_filter(project)
    )


def start_as_a_stopped_supervisor_did(client, job: JobSpec, trigger="schedule") -> Execution:
    """A run whose supervisor created its service, then died."""
    record = execution.start(job.name, trigger)
    client.services.create(**service_options(job, record))
    return record


def wait_ended(client, job: JobSpec, record: Execution) -> None:
    name = service_options(job, record)["name"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        tasks = client.services.get(name).tasks()
        if tasks and tasks[0]["Status"]["State"] in ("complete", "failed"):
            return
        time.sleep(0.3)
    pytest.fail(f"{name} did not end")


@e2e
def test_a_job_runs_as_a_one_shot_swarm_job_and_its_summary_makes_it_ok(client):
    seen = {}

    def inspect_while_running():
        for _ in range(300):
            found = client.services.list(filters={"label": "eu.egi.fedcloud.job=swarm-test"})
            if found:
                seen["spec"] = found[0].attrs["Spec"]
                return
            time.sleep(0.1)

    watcher = threading.Thread(target=inspect_while_running)
    watcher.start()
    record = run(client, spec("echo working; sleep 2; echo 'swarm-test ok added=2 duration=2.0s'"))
    watcher.join()
    assert (record.outcome, record.exit_code) == ("ok", 0), record.reason
    assert record.summary == "swarm-test ok added=2 duration=2.0s"
    assert "working" in record.output
    assert record.container.startswith(f"{PROJECT}-job-swarm-test-")
    assert not leftovers(client)  # service and container removed once read
    service = seen["spec"]
    assert service["Name"] == record.container
    assert service["Mode"] == {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}}
    assert service["TaskTemplate"]["RestartPolicy"]["Condition"] == "none"
    assert service["Labels"]["eu.egi.fedcloud.role"] == "job"
    assert service["Labels"]["eu.egi.fedcloud.trigger"] == "manual"
    assert service["Labels"]["com.docker.stack.namespace"] == PROJECT
    container = service["TaskTemplate"]["ContainerSpec"]
    assert container["Labels"] == service["Labels"]
    assert container["Command"] == ["sh"] and container["Args"][0] == "-c"
    assert container["Env"] == ["TZ=UTC"]
    limits = service["TaskTemplate"]["Resources"]["Limits"]
    assert limits == {"NanoCPUs": 1_000_000_000, "MemoryBytes": 64 * 1024 * 1024}


@e2e
def test_a_failing_job_is_failed_with_its_exit_status_and_last_words(client):
    record = run(client, spec("echo 'cannot reach keystone' >&2; exit 3"))
    assert (record.outcome, record.exit_code) == ("failed", 3)
    assert record.reason == "exit status 3: cannot reach keystone"
    assert "cannot reach keystone" in record.output
    assert not leftovers(client)


@e2e
def test_a_job_runs_hardened_read_only_with_a_private_tmp_and_no_capabilities(client):
    record = run(
        client,
        spec(
            "touch /etc/x 2>&1 | tail -1; echo tmp > /tmp/ok && cat /tmp/ok; "
            "grep CapEff /proc/self/status"
        ),
    )
    assert record.outcome == "ok", record.output
    assert "Read-only file system" in record.output
    assert "tmp\n" in record.output
    assert "CapEff:\t0000000000000000" in record.output
    # The jobs' own users are not root: /tmp is theirs too.
    nobody = run(client, spec("echo tmp > /tmp/ok && cat /tmp/ok", user="nobody"))
    assert (nobody.outcome, nobody.output) == ("ok", "tmp\n")


@e2e
def test_a_capability_a_job_needs_is_the_only_one_it_keeps(client):
    record = run(client, spec("grep CapEff /proc/self/status", capabilities=("DAC_OVERRIDE",)))
    assert "CapEff:\t0000000000000002" in record.output  # CAP_DAC_OVERRIDE is bit 1


@e2e
def test_a_job_over_its_timeout_is_removed_and_says_so(client):
    record = run(client, spec("echo started; sleep 120", timeout=datetime.timedelta(seconds=4)))
    assert record.outcome == "failed"
    assert record.exit_code is None
    assert record.reason.startswith("timed out after 0:00:04")
    assert record.reason.endswith("job service removed")
    assert record.duration_s < 30
    assert not leftovers(client)


@e2e
def test_an_image_no_node_has_is_a_one_line_reason_naming_the_fix(client):
    record = run(client, spec("true", image="fedcloud/does-not-exist:0"))
    assert record.outcome == "failed"
    assert "\n" not in record.reason
    assert "No such image" in record.reason
    assert "every swarm node needs fedcloud/does-not-exist:0" in record.reason
    assert not leftovers(client)


@e2e
def test_a_restarted_supervisor_follows_the_job_it_left_to_its_real_outcome(client):
    job = spec("sleep 3; echo 'swarm-test ok applied=1 duration=3.0s'")
    left = start_as_a_stopped_supervisor_did(client, job)
    followed = SwarmRunner(client, poll_s=0.2).reattach(job, left)
    assert followed is not None
    assert (followed.outcome, followed.summary) == ("ok", "swarm-test ok applied=1 duration=3.0s")
    assert followed.container == service_options(job, left)["name"]
    assert followed.duration_s >= 3  # it waited for the job, not just read a state
    assert not leftovers(client)


@e2e
def test_a_run_whose_service_is_gone_is_not_found(client):
    assert SwarmRunner(client).reattach(spec("true"), execution.start("swarm-test", "x")) is None


@e2e
def test_ended_job_services_of_this_project_are_reaped_running_kept_and_others_kept(client):
    ours = spec("true")
    busy = spec("sleep 60", name="swarm-busy")
    other = spec("true", project="someone-else")
    done = start_as_a_stopped_supervisor_did(client, ours)
    time.sleep(1.1)  # service names carry the start time to the second
    kept = start_as_a_stopped_supervisor_did(client, ours)
    time.sleep(1.1)
    orphaned = start_as_a_stopped_supervisor_did(client, ours)
    running = start_as_a_stopped_supervisor_did(client, busy)
    theirs = start_as_a_stopped_supervisor_did(client, other)
    for job, record in ((ours, done), (ours, kept), (ours, orphaned), (other, theirs)):
        wait_ended(client, job, record)
    # Removed by hand: engines before 24 keep its container (moby#44312).
    orphan = service_options(ours, orphaned)["name"]
    client.services.get(orphan).remove()
    removed = SwarmRunner(client).reap(PROJECT, keep={kept.started.isoformat()})
    assert removed >= 1
    left = {s.name for s in client.services.list()}
    assert service_options(ours, done)["name"] not in left
    for job, record in ((ours, kept), (busy, running), (other, theirs)):
        assert service_options(job, record)["name"] in left
    containers = {
        c.labels["com.docker.swarm.service.name"]
        for c in client.containers.list(all=True, filters=job_filter())
    }
    assert orphan not in containers and service_options(ours, done)["name"] not in containers
    assert service_options(ours, kept)["name"] in containers


def fake_engine(own_labels: dict[str, str], manager: bool) -> SimpleNamespace:
    """An engine that knows one container (whatever name it is asked for)."""
    own = SimpleNamespace(labels=own_labels)
    return SimpleNamespace(
        containers=SimpleNamespace(get=lambda name: own),
        info=lambda: {"Swarm": {"ControlAvailable": manager}},
    )


def test_a_supervisor_in_a_swarm_task_on_a_manager_runs_jobs_on_the_swarm():
    task = {"com.docker.swarm.service.name": "fedcloud-appliance_supervisor"}
    assert in_swarm_task(fake_engine(task, manager=True))


def test_a_supervisor_on_a_worker_or_under_compose_runs_jobs_as_containers():
    task = {"com.docker.swarm.service.name": "fedcloud-appliance_supervisor"}
    assert not in_swarm_task(fake_engine(task, manager=False))
    compose = {"com.docker.compose.project": "fedcloud-appliance"}
    assert not in_swarm_task(fake_engine(compose, manager=True))


@e2e
def test_a_process_outside_any_container_is_not_in_a_swarm_task(client):
    assert not in_swarm_task(client)
