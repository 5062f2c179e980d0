"""The systemd units: valid for systemd, and their commands work as written.

The units name the installed paths (/usr/local/bin/docker-compose,
/opt/fedcloud-appliance/compose/...); the tests swap in this checkout's and
run the ExecStart/ExecStop lines themselves, under a project name of their
own so they never touch a real installation.
"""

from __future__ import annotations

import configparser
import json
import os
import shlex
import shutil
import subprocess
import textwrap
import urllib.request
from pathlib import Path

import docker
import pytest

from fedcloud_common.services import SERVICES

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
UNITS = sorted((ROOT / "systemd").glob("*.service"))
WRAPPER = ROOT / "systemd" / "fedcloud-compose"
COMPOSE = ROOT / ".venv" / "bin" / "docker-compose"
PROJECT = "fedcloud-unit-test"
STATUS_PORT = 43081


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # keys are case-sensitive in systemd
    parser.read(path)
    return parser


def localised(line: str) -> list[str]:
    """A unit's command line, run with this checkout's wrapper."""
    words = shlex.split(line)
    assert words[0] == "/usr/local/sbin/fedcloud-compose"
    return [str(WRAPPER), *words[1:]]


def run_unit(name: str, line: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a unit's ExecStart or ExecStop line as systemd would, here."""
    command = unit(ROOT / "systemd" / name)["Service"][line]
    return subprocess.run(
        localised(command), env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_every_expected_unit_is_shipped():
    assert [u.name for u in UNITS] == [
        "bdii.service",
        "cloudkeeper-os.service",
        "fedcloud-appliance.service",
    ]


def test_the_supervisor_starts_after_the_services_its_jobs_use_but_not_bound_to_them():
    supervisor = unit(ROOT / "systemd" / "fedcloud-appliance.service")["Unit"]
    assert {"bdii.service", "cloudkeeper-os.service"} <= set(supervisor["After"].split())
    assert "bdii.service" not in supervisor.get("Requires", "")
    assert "cloudkeeper-os.service" not in supervisor.get("Requires", "")


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="needs systemd-analyze")
def test_units_pass_systemd_analyze_verify(tmp_path):
    for path in UNITS:
        text = path.read_text().replace("/usr/local/sbin/fedcloud-compose", str(WRAPPER))
        (tmp_path / path.name).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", *sorted(str(p) for p in tmp_path.iterdir())],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@pytest.fixture
def host_dirs(tmp_path):
    """What an operator's host holds: config with a secret, grid-security, image store."""
    config, grid, images = (tmp_path / name for name in ("etc", "grid-security", "image_data"))
    for directory in (config / "secrets", grid, images):
        directory.mkdir(parents=True)
    secret = config / "secrets" / "openstack-password"
    secret.write_text("not-used-here\n")
    os.chmod(secret, 0o600)
    env = {
        **os.environ,
        "FEDCLOUD_CONFIG_DIR": str(config),
        "FEDCLOUD_GRID_SECURITY": str(grid),
        "FEDCLOUD_IMAGE_DATA": str(images),
        "FEDCLOUD_STATUS_PORT": str(STATUS_PORT),
        # Where the wrapper finds what the OVA installs under /usr/local and /opt.
        "FEDCLOUD_COMPOSE_BIN": str(COMPOSE),
        "FEDCLOUD_COMPOSE_DIR": str(ROOT / "compose"),
        "FEDCLOUD_PROJECT": PROJECT,
        "FEDCLOUD_START_TIMEOUT": "60",
    }
    yield config, env
    subprocess.run(
        [
            str(COMPOSE),
            "-p",
            PROJECT,
            "-f",
            str(ROOT / "compose" / "docker-compose.yml"),
            "down",
            "--volumes",
        ],
        env=env,
        capture_output=True,
        check=False,
    )


def write_config(config_dir: Path, body: str) -> None:
    (config_dir / "appliance.yaml").write_text(textwrap.dedent(body))


SUPERVISOR_ONLY = """
    site: {name: UNIT-TEST, hostname: localhost}
    openstack:
      auth_url: http://localhost:5000/v3
      username: fedcloud
      password_file: /etc/fedcloud-appliance/secrets/openstack-password
      project_name: fedcloud-ops
    images: {enabled: false}
    bdii: {enabled: false}
"""


def test_fedcloud_appliance_unit_starts_the_supervisor_and_stops_it(host_dirs):
    config_dir, env = host_dirs
    write_config(config_dir, SUPERVISOR_ONLY)
    start = run_unit("fedcloud-appliance.service", "ExecStart", env)
    assert start.returncode == 0, start.stderr
    status = json.load(urllib.request.urlopen(f"http://127.0.0.1:{STATUS_PORT}/status.json"))
    assert status["jobs"] == []
    supervisors = [s for s in status["services"] if s["service"] == "supervisor"]
    assert supervisors and supervisors[0]["state"] == "running"
    labels = {"label": f"com.docker.compose.project={PROJECT}"}
    (container,) = docker.from_env().containers.list(filters=labels)
    mounts = {m["Destination"]: m for m in container.attrs["Mounts"]}
    assert "/var/run/docker.sock" in mounts  # the supervisor, and only it, has the socket
    assert mounts["/etc/fedcloud-appliance"]["RW"] is False

    stop = run_unit("fedcloud-appliance.service", "ExecStop", env)
    assert stop.returncode == 0, stop.stderr
    assert not docker.from_env().containers.list(all=True, filters=labels)


def test_an_invalid_config_keeps_the_supervisor_up_showing_why(host_dirs):
    """A typo must not crash-loop the supervisor: its page says what is wrong."""
    config_dir, env = host_dirs
    typo = SUPERVISOR_ONLY.replace(
        "bdii: {enabled: false}", "bdii: {enabled: false, schedule: hourly}"
    )
    assert typo != SUPERVISOR_ONLY
    write_config(config_dir, typo)
    start = run_unit("fedcloud-appliance.service", "ExecStart", env)
    assert start.returncode == 0, start.stderr
    assert "supervisor: running healthy" in start.stdout
    # What `journalctl -u` shows: the wrapper's warning and the loader's message.
    assert "appliance.yaml is not valid" in start.stderr
    assert "bdii.schedule: 'hourly' is not a cron expression" in start.stderr
    with urllib.request.urlopen(f"http://localhost:{STATUS_PORT}/status.json", timeout=10) as r:
        shown = json.load(r)
    assert "bdii.schedule: 'hourly' is not a cron expression" in shown["config_error"]
    assert shown["jobs"] == []  # nothing runs on a config that does not load


BDII_PORT = 43171
UNREACHABLE_CLOUD = SUPERVISOR_ONLY.replace("http://localhost:5000/v3", "http://127.0.0.1:9/v3")


def test_bdii_unit_serves_port_2170_read_only_and_reports_an_unreachable_cloud(host_dirs):
    config_dir, env = host_dirs
    env = {**env, "FEDCLOUD_BDII_PORT": str(BDII_PORT)}
    write_config(
        config_dir,
        UNREACHABLE_CLOUD.replace("    bdii: {enabled: false}\n", "")
        + "    bdii:\n      vos: {vo.demo.example: {project: vo-demo}}\n",
    )
    start = run_unit("bdii.service", "ExecStart", env)
    # Rendered (secrets copied for the non-root BDII user), both BDIIs healthy.
    assert start.returncode == 0, start.stderr
    assert "resource-bdii: running healthy" in start.stdout
    assert "site-bdii: running healthy" in start.stdout
    uri = f"ldap://127.0.0.1:{BDII_PORT}"
    search = subprocess.run(
        ["ldapsearch", "-x", "-H", uri, "-b", "o=glue"], capture_output=True, text=True, check=False
    )
    assert search.returncode in (0, 32), search.stderr  # slapd answers anonymously
    write = subprocess.run(
        ["ldapadd", "-x", "-H", uri],
        input="dn: o=glue\nobjectClass: organization\no: glue\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert write.returncode == 8  # strong(er) authentication required
    labels = {"label": f"com.docker.compose.project={PROJECT}"}
    resource = next(
        c
        for c in docker.from_env().containers.list(filters=labels)
        if c.labels["com.docker.compose.service"] == "resource-bdii"
    )
    logs = resource.logs().decode()
    # The password file was readable (no permission error); Keystone was not.
    assert "cannot list the user's projects" in logs
    assert "bdii-publish failed" in logs
    assert "Permission denied" not in logs

    stop = run_unit("bdii.service", "ExecStop", env)
    assert stop.returncode == 0, stop.stderr
    assert not docker.from_env().containers.list(filters=labels)


def test_cloudkeeper_os_unit_runs_the_backend_as_its_own_user_with_its_secrets(host_dirs):
    config_dir, env = host_dirs
    write_config(
        config_dir,
        UNREACHABLE_CLOUD.replace("    images: {enabled: false}\n", "") + "    images:\n"
        "      endorser: {dn: /CN=endorser, ca: /CN=ca}\n"
        "      lists: [{name: demo, url: 'https://127.0.0.1:9/list', project: vo-demo}]\n",
    )
    start = run_unit("cloudkeeper-os.service", "ExecStart", env)
    assert start.returncode == 0, start.stderr
    assert "cloudkeeper-os: running healthy" in start.stdout
    labels = {"label": f"com.docker.compose.project={PROJECT}"}
    (backend,) = docker.from_env().containers.list(filters=labels)
    assert backend.exec_run("id -u").output.decode().strip() == str(SERVICES["cloudkeeper"].uid)
    password = "/etc/fedcloud-appliance/rendered/secrets/images/openstack-password"
    assert backend.exec_run(["cat", password]).output.decode() == "not-used-here\n"
    assert "/var/run/docker.sock" not in {m["Destination"] for m in backend.attrs["Mounts"]}

    stop = run_unit("cloudkeeper-os.service", "ExecStop", env)
    assert stop.returncode == 0, stop.stderr
    assert not docker.from_env().containers.list(filters=labels)
