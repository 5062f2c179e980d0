"""The whole appliance, as `make demo` runs it, asserted from outside.

``tools/demo up`` (what `make demo` runs) starts the demo cloud, the
stand-ins and the appliance's services through the systemd units' wrapper,
and fails unless images reach Glance and the site BDII and accounting
records reach the stand-in within its time limit. These tests then check
each of those claims themselves, that a crashed service comes back and the
next job works, that no secret leaks into `docker inspect` or a log, and
that the same compose file deploys as a swarm stack whose BDII answers and
whose jobs run as swarm jobs.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import openstack.config
import openstack.connection
import pytest

from fedcloud_common.services import by_section
from fedcloud_common.summary import parse_summary

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
PROJECT = os.environ.get("FEDCLOUD_TEST_APPLIANCE_PROJECT", "fedcloud-e2e")
OFFSET = int(os.environ.get("FEDCLOUD_TEST_APPLIANCE_OFFSET", "21000"))
STATE = ROOT / "build" / "demo" / PROJECT
BDII_PORT, STATUS_PORT = 2170 + OFFSET, 8080 + OFFSET
SERVICES = ("supervisor", "cloudkeeper-os", "resource-bdii", "site-bdii")
DEMO_IMAGES = {"FedCloud demo image (qcow2)", "FedCloud demo image (raw)"}
SECRET = "fedcloudpass"  # the demo user's Keystone password, in etc/secrets/


def _env() -> dict[str, str]:
    return {**os.environ, "DEMO_PROJECT": PROJECT, "DEMO_PORT_OFFSET": str(OFFSET)}


@pytest.fixture(scope="module")
def appliance() -> Iterator[str]:
    """The demo, up and working; yields what `tools/demo up` printed."""
    # From nothing: whatever a killed earlier run left is removed first.
    subprocess.run(
        [str(ROOT / "tools" / "demo"), "down"],
        cwd=ROOT, env=_env(), capture_output=True, timeout=300, check=False,
    )  # fmt: skip
    started = time.monotonic()
    up = subprocess.run(
        [str(ROOT / "tools" / "demo"), "up"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    elapsed = time.monotonic() - started
    try:
        assert up.returncode == 0, (
            f"tools/demo up failed:\n{up.stdout[-6000:]}\n{up.stderr[-4000:]}"
        )
        print(f"tools/demo up: everything working after {elapsed:.0f} s")
        yield up.stdout
    finally:
        if os.environ.get("FEDCLOUD_TEST_KEEP_DEMO") != "1":
            subprocess.run(
                [str(ROOT / "tools" / "demo"), "down"],
                cwd=ROOT,
                env=_env(),
                capture_output=True,
                timeout=300,
                check=False,
            )


@pytest.fixture(scope="module")
def engine() -> docker.DockerClient:
    return docker.from_env()


@pytest.fixture(scope="module")
def glance(appliance: str) -> openstack.connection.Connection:
    config = openstack.config.OpenStackConfig(config_files=[str(STATE / "clouds.yaml")])
    return openstack.connection.Connection(config=config.get_one(cloud="fedcloud-demo-admin"))


def container(engine: docker.DockerClient, service: str):
    return engine.containers.get(f"{PROJECT}-{service}-1")


def ldapsearch(port: int, object_class: str, *attributes: str) -> str:
    done = subprocess.run(
        ["ldapsearch", "-x", "-LLL", "-H", f"ldap://localhost:{port}", "-b", "o=glue",
         f"(objectClass={object_class})", *attributes],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return done.stdout if done.returncode == 0 else ""


def appliance_cli(engine: docker.DockerClient, *args: str) -> tuple[int, str]:
    result = container(engine, "supervisor").exec_run(["appliance", *args])
    return result.exit_code, result.output.decode()


def wait_for(what: str, check: Callable[[], object], timeout: float = 240) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(3)
    pytest.fail(f"not within {timeout:.0f} s: {what}")


def demo_images(glance: openstack.connection.Connection) -> dict[str, object]:
    return {
        i.name: i for i in glance.image.images(tag="fedcloud-appliance") if i.status == "active"
    }


def test_make_demo_says_what_to_try_next(appliance):
    assert "The FedCloud appliance is running against the demo cloud" in appliance
    assert f"ldapsearch -x -H ldap://localhost:{BDII_PORT} -b o=glue" in appliance
    assert "appliance run image-sync" in appliance


def test_the_image_list_is_in_glance_shared_with_the_vo_project(glance):
    images = demo_images(glance)
    assert set(images) == DEMO_IMAGES
    vo_project = glance.identity.find_project("vo-fedcloud")
    for image in images.values():
        members = {m.member_id for m in glance.image.members(image)}
        assert vo_project.id in members, image.name


def test_the_demo_images_are_synced_to_region_two_and_the_second_cloud(appliance, engine):
    """The regions section of the demo: region-sync copied what image-sync put in RegionOne."""
    config = openstack.config.OpenStackConfig(config_files=[str(STATE / "clouds.yaml")])
    master = openstack.connection.Connection(config=config.get_one(cloud="fedcloud-demo"))
    expected = {
        i.name: i.checksum for i in master.image.images(tag="fedcloud-appliance")
        if i.status == "active"
    }  # fmt: skip
    assert set(expected) == DEMO_IMAGES
    for cloud, region in (("fedcloud-demo", "RegionTwo"), ("fedcloud-demo-b", "RegionOne")):
        conn = openstack.connection.Connection(
            config=config.get_one(cloud=cloud, region_name=region)
        )
        copies = {
            i.name: i.checksum
            for i in conn.image.images(owner=conn.current_project_id)
            if i.status == "active"
        }
        assert copies == expected, (cloud, region)
    code, text = appliance_cli(engine, "status")
    assert code == 0
    assert "RegionTwo" in text and "cloudb:RegionOne" in text


def test_the_site_bdii_publishes_the_images_and_flavors(appliance):
    images = ldapsearch(BDII_PORT, "GLUE2CloudComputingImage", "GLUE2EntityName")
    for name in DEMO_IMAGES:
        assert f"GLUE2EntityName: {name}" in images
    assert "GLUE2DomainID=FEDCLOUD-DEMO,o=glue" in images.replace("\n ", "")
    flavors = ldapsearch(BDII_PORT, "GLUE2CloudComputingInstanceType", "GLUE2EntityName")
    assert "GLUE2EntityName: m1.small" in flavors


def test_the_site_bdii_publishes_the_sites_location_and_contacts(appliance):
    """site.country and site.contacts of the demo's appliance.yaml, as GLUE 2 publishes them."""
    location = ldapsearch(BDII_PORT, "GLUE2Location", "GLUE2LocationCountry")
    assert "GLUE2LocationCountry: NL" in location
    contacts = ldapsearch(BDII_PORT, "GLUE2Contact", "GLUE2ContactDetail")
    assert "GLUE2ContactDetail: mailto:demo@example.org" in contacts


def test_every_service_runs_hardened(engine, appliance):
    for service in SERVICES:
        host = container(engine, service).attrs["HostConfig"]
        assert host["ReadonlyRootfs"], service
        assert host["CapDrop"] == ["ALL"], service
        assert "no-new-privileges:true" in host["SecurityOpt"], service
    assert set(container(engine, "supervisor").attrs["HostConfig"]["CapAdd"]) == {
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER"
    } or set(container(engine, "supervisor").attrs["HostConfig"]["CapAdd"]) == {
        "CHOWN", "DAC_OVERRIDE", "FOWNER"
    }  # fmt: skip


def test_signed_accounting_records_reached_the_endpoint(appliance):
    messages = [json.loads(p.read_text()) for p in sorted((STATE / "ams-store").glob("*.json"))]
    assert messages, "the accounting stand-in accepted no message"
    assert not list((STATE / "ams-store" / "rejected").glob("*"))
    bodies = "\n".join(m["body"] for m in messages)
    assert {m["signer"] for m in messages} == {"/DC=org/DC=example/CN=fedcloud-demo-appliance"}
    assert "APEL-cloud-message" in bodies and "CloudComputeService: FEDCLOUD-DEMO" in bodies
    assert "FQAN: vo.demo.example" in bodies


def test_status_shows_every_job_ok_and_every_service_healthy(appliance):
    with urllib.request.urlopen(f"http://localhost:{STATUS_PORT}/status.json", timeout=10) as r:
        report = json.load(r)
    jobs = {job["job"]: job["last_run"] for job in report["jobs"]}
    assert set(jobs) == {"image-sync", "bdii-publish", "caso-extract", "apel-send", "region-sync"}
    for name, last in jobs.items():
        assert last["outcome"] == "ok", (name, last)
        assert last["summary"].startswith(("cloudkeeper-sync ok", name)), last  # one summary line
    # This appliance's services only, although the tests' others share the engine.
    services = {s["service"]: s for s in report["services"]}
    assert set(services) == set(SERVICES)
    for service in services.values():
        assert service["container"].startswith(f"{PROJECT}-"), service
        assert service["health"] == "healthy", service


@pytest.mark.parametrize("service", SERVICES)
def test_a_crashed_service_is_restarted_and_the_next_job_works(service, engine, glance, appliance):
    victim = container(engine, service)
    restarts = victim.attrs["RestartCount"]
    os.kill(victim.attrs["State"]["Pid"], signal.SIGKILL)  # a crash, not a stop

    def back() -> bool:
        victim.reload()
        state = victim.attrs["State"]
        return (
            victim.attrs["RestartCount"] > restarts
            and state["Running"]
            and state.get("Health", {}).get("Status") == "healthy"
        )

    wait_for(f"{service} restarted and healthy", back, timeout=180)
    if service == "cloudkeeper-os":
        # Only the restarted backend can put a deleted image back.
        gone = demo_images(glance)["FedCloud demo image (raw)"]
        glance.image.delete_image(gone)
        code, output = appliance_cli(engine, "run", "image-sync")
        assert code == 0, output
        assert "planned=1 applied=1 failed=0" in output
        assert set(demo_images(glance)) == DEMO_IMAGES
    elif service == "supervisor":
        code, output = appliance_cli(engine, "run", "caso-extract")
        assert code == 0 and "caso-extract ok" in output, output
    elif service == "resource-bdii":
        code, output = appliance_cli(engine, "run", "bdii-publish")
        assert code == 0 and "bdii-publish ok" in output, output
    else:
        wait_for(
            "the restarted site BDII serving the images",
            lambda: "FedCloud demo image" in ldapsearch(BDII_PORT, "GLUE2CloudComputingImage"),
        )


def test_no_secret_in_any_containers_environment_or_logs(engine, appliance):
    secrets = [SECRET, *_key_lines(STATE / "grid-security" / "hostkey.pem")]
    containers = engine.containers.list(
        all=True, filters={"label": f"com.docker.compose.project={PROJECT}"}
    )
    names = {c.labels.get("com.docker.compose.service") for c in containers}
    assert set(SERVICES) <= names
    for each in containers:
        environment = "\n".join(each.attrs["Config"]["Env"] or [])
        logs = each.logs().decode("utf-8", "replace")
        for secret in secrets:
            assert secret not in environment, each.name
            assert secret not in logs, each.name
    code, status = appliance_cli(engine, "status", "--json")
    assert code == 0 and SECRET not in status


def test_each_service_reads_its_own_copy_of_its_secrets(engine, appliance):
    supervisor = container(engine, "supervisor")
    rendered = "/var/lib/fedcloud-appliance/rendered"
    code, listing = supervisor.exec_run(
        ["sh", "-c", f"cd {rendered} && stat -c '%a %u %n' secrets/*/*"]
    )
    assert code == 0, listing
    # Owned by the user each section's service image runs as.
    expected_owner = {
        s: str(by_section(s).uid) for s in ("images", "bdii", "accounting", "regions")
    }
    copies = [line.split() for line in listing.decode().splitlines()]
    assert {path.split("/")[1] for _, _, path in copies} == set(expected_owner)
    for mode, owner, path in copies:
        assert (mode, owner) == ("400", expected_owner[path.split("/")[1]]), path
    code, settings = supervisor.exec_run(
        ["sh", "-c", f"cat {rendered}/*.json {rendered}/bdii/*.json"]
    )
    assert code == 0 and b"password_file" in settings
    assert SECRET.encode() not in settings  # settings name the copies, never hold a secret


def _key_lines(path: Path) -> list[str]:
    """Lines of a PEM private key that would only appear if the key leaked."""
    return [line for line in path.read_text().splitlines() if not line.startswith("-----")][1:4]


# --- the same compose file as a swarm stack ---------------------------------

STACK = "fedcloud-swarm"
SWARM_BDII_PORT, SWARM_STATUS_PORT = 2171 + OFFSET, 8081 + OFFSET


@pytest.fixture(scope="module")
def swarm(engine: docker.DockerClient) -> Iterator[None]:
    """A single-node swarm for these tests (left again after them, if it made one)."""
    made = engine.info()["Swarm"]["LocalNodeState"] != "active"
    if made:
        subprocess.run(
            ["docker", "swarm", "init", "--advertise-addr", "127.0.0.1"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
    try:
        yield
    finally:
        subprocess.run(["docker", "stack", "rm", STACK], capture_output=True, timeout=120)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and engine.containers.list(
            all=True, filters={"label": f"com.docker.stack.namespace={STACK}"}
        ):
            time.sleep(2)
        # A job service removed with the stack leaves its ended container on
        # engines before 24 (moby#44312): it would hold the stack's volumes.
        for left in engine.containers.list(
            all=True, filters={"label": f"com.docker.stack.namespace={STACK}"}
        ):
            left.remove(force=True)
        for volume in engine.volumes.list(filters={"name": f"{STACK}_"}):
            volume.remove(force=True)
        if made:
            subprocess.run(["docker", "swarm", "leave", "--force"], capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def stack(appliance: str, swarm: None) -> None:
    """The compose file deployed as a stack, with the demo's config, beside the demo."""
    env = {
        **os.environ,
        "FEDCLOUD_CONFIG_DIR": str(STATE / "etc"),
        "FEDCLOUD_GRID_SECURITY": str(STATE / "grid-security"),
        "FEDCLOUD_IMAGE_DATA": str(STATE / "image_data"),
        "FEDCLOUD_BDII_PORT": str(SWARM_BDII_PORT),
        "FEDCLOUD_STATUS_PORT": str(SWARM_STATUS_PORT),
        "COMPOSE_PROJECT_NAME": STACK,
    }
    deployed = subprocess.run(
        ["docker", "stack", "deploy", "--compose-file",
         str(ROOT / "compose" / "docker-compose.yml"), STACK],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert deployed.returncode == 0, deployed.stderr


def test_the_compose_file_deploys_as_a_swarm_stack_and_its_bdii_answers(stack):
    flavors = wait_for(
        "the stack's site BDII answering with the cloud's flavors",
        lambda: ldapsearch(SWARM_BDII_PORT, "GLUE2CloudComputingInstanceType", "GLUE2EntityName"),
        timeout=300,
    )
    assert "GLUE2EntityName: m1.small" in flavors
    with urllib.request.urlopen(
        f"http://localhost:{SWARM_STATUS_PORT}/status.json", timeout=10
    ) as r:
        report = json.load(r)
    assert {job["job"] for job in report["jobs"]} == {
        "image-sync", "bdii-publish", "caso-extract", "apel-send", "region-sync"
    }  # fmt: skip
    assert {s["service"] for s in report["services"]} == set(SERVICES)
    assert all(s["container"].startswith(f"{STACK}_") for s in report["services"])


def test_on_the_swarm_a_job_runs_as_a_swarm_job_and_does_its_work(stack, engine):
    """A manual caso-extract: a replicated-job service of the stack, and a moved watermark."""
    supervisor = wait_for(
        "the stack's supervisor task",
        lambda: engine.containers.list(
            filters={"label": f"com.docker.swarm.service.name={STACK}_supervisor"}
        ),
    )[0]  # type: ignore[index]
    # The catch-up run of caso-extract first (a manual run beside it is skipped).
    wait_for("the catch-up caso-extract to end", lambda: _swarm_job_ended("caso-extract"))
    created: list[dict] = []
    watching = docker.from_env()
    events = watching.events(decode=True, filters={"type": "service", "event": "create"})

    def watch() -> None:
        # Inspected as it is created: the runner removes it once it has read it.
        with contextlib.suppress(Exception):  # the stream ends when closed
            for event in events:
                created.append(watching.services.get(event["Actor"]["ID"]).attrs["Spec"])

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    try:
        result = supervisor.exec_run(["appliance", "run", "caso-extract"])
    finally:
        time.sleep(1)
        events.close()
        watcher.join(10)
        watching.close()
    output = result.output.decode()
    assert result.exit_code == 0, output
    # Its verdict line (the job-run log line, on stderr, may come after it).
    assert "caso-extract: ok" in output.splitlines(), output
    jobs = [s for s in created if s["Labels"].get("eu.egi.fedcloud.job") == "caso-extract"]
    assert len(jobs) == 1, created
    job = jobs[0]
    assert "ReplicatedJob" in job["Mode"]
    assert job["Labels"]["eu.egi.fedcloud.project"] == STACK
    assert job["Labels"]["eu.egi.fedcloud.trigger"] == "manual"
    assert job["TaskTemplate"]["ContainerSpec"]["Image"].startswith("fedcloud/accounting:")
    # Removed once read, its container too.
    assert not engine.services.list(filters={"name": job["Name"]})
    assert not engine.containers.list(
        all=True, filters={"label": f"com.docker.swarm.service.name={job['Name']}"}
    )
    # Its work, in the stack's own volume: the watermarks (one per record type),
    # the earliest of which the job's summary names.
    summary = next(parsed for line in output.splitlines() if (parsed := parse_summary(line)))
    marks = json.loads(
        engine.containers.run(
            "debian:bookworm-slim",
            ["cat", "/caso/fedcloud-watermark.json"],
            volumes={f"{STACK}_caso_state": {"bind": "/caso", "mode": "ro"}},
            remove=True,
        )
    )["extracted_until"]
    assert marks and min(marks.values()) == summary[2]["watermark"]
    assert all(datetime.datetime.fromisoformat(mark) >= before for mark in marks.values())


def _swarm_job_ended(job: str) -> bool:
    try:
        with urllib.request.urlopen(
            f"http://localhost:{SWARM_STATUS_PORT}/status.json", timeout=10
        ) as r:
            report = json.load(r)
    except OSError:
        return False
    last = next(j["last_run"] for j in report["jobs"] if j["job"] == job)
    return last is not None and last["outcome"] != "running"
