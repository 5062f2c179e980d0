"""The fedcloud/accounting image: both jobs run in it, as a non-root user.

The image is what the supervisor starts; here it is started by hand with
the job config mounted, on the host network so the demo cloud's catalog
(``localhost``) and the stand-in resolve.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import docker
import pytest
from dirq.QueueSimple import QueueSimple

from fedcloud_common.services import SERVICES

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[3]
IMAGE = f"fedcloud/accounting:{(ROOT / 'VERSION').read_text().strip()}"
UID = SERVICES["accounting"].uid  # the image's apel user


def _own(path: Path) -> None:
    for dirpath, _, files in os.walk(path):
        os.chown(dirpath, UID, UID)
        for name in files:
            os.chown(Path(dirpath) / name, UID, UID)


def _run(command: list[str], work: Path) -> tuple[int, str]:
    client = docker.from_env()
    container = client.containers.run(
        IMAGE,
        command,
        volumes={str(work): {"bind": "/work", "mode": "rw"}},
        network_mode="host",
        name=f"acct-test-{os.getpid()}-{command[-1].rsplit('/', 1)[-1]}-{len(command)}",
        detach=True,
    )
    try:
        status = container.wait(timeout=300)["StatusCode"]
        return status, container.logs().decode()
    finally:
        container.remove(force=True)


def test_extract_and_send_run_in_the_image_as_non_root(demo_cloud, endpoint, pki, tmp_path):
    work = tmp_path / "work"
    (work / "pki").mkdir(parents=True)
    for name in ("hostcert.pem", "hostcert.key", "ca.pem"):
        (work / "pki" / name).write_bytes((pki.dir / name).read_bytes())
    (work / "password").write_text("fedcloudpass\n")
    extract = {
        "site_name": "DEMO-SITE",
        "openstack": {
            "auth_url": demo_cloud.auth_url,
            "username": "fedcloud",
            "password_file": "/work/password",
            "project_name": "fedcloud-ops",
        },
        "project_tag": demo_cloud.seed.ACCOUNTED_TAG,
        "spool_dir": "/work/apel/outgoing/openstack",
        "state_dir": "/work/caso",
        "start_date": "2026-01-01",
    }
    send = {
        "host": "localhost",
        "port": endpoint.port,
        "authx509_port": endpoint.authx509_port,
        "cert": "/work/pki/hostcert.pem",
        "key": "/work/pki/hostcert.key",
        "ca_bundle": "/work/pki/ca.pem",
        "spool_dir": "/work/apel/outgoing/openstack",
        "quarantine_dir": "/work/apel/quarantine",
    }
    # one file for both jobs, as the supervisor renders it
    (work / "accounting.json").write_text(json.dumps({"extract": extract, "send": send}))
    for secret in ("password", "pki/hostcert.key"):
        (work / secret).chmod(0o600)
    _own(work)

    code, logs = _run(["id", "-u"], work)
    assert (code, logs.strip()) == (0, str(UID))

    code, logs = _run(["fedcloud-accounting", "extract", "--config", "/work/accounting.json"], work)
    assert code == 0, logs
    seed = demo_cloud.seed
    vos = {p.name for p in seed.PROJECTS if p.vo}
    servers = sum(1 for s in seed.SERVERS if s.project in vos)  # one record each
    # cASO's nova extractor also builds the GPU server's accelerator record
    # (one month of life), counted though only cloud records are written
    flavors = {f.name: f for f in seed.FLAVORS}
    gpus = sum(
        1
        for s in seed.SERVERS
        if s.project in vos and "Accelerator:Type" in flavors[s.flavor].extra_specs
    )
    assert f"caso-extract ok projects=2 records={servers + gpus} " in logs
    spool = work / "apel" / "outgoing" / "openstack"
    assert QueueSimple(str(spool)).count() >= 1
    assert all(p.stat().st_uid == UID for p in spool.rglob("*"))

    code, logs = _run(["fedcloud-accounting", "send", "--config", "/work/accounting.json"], work)
    assert code == 0, logs
    assert "apel-send ok" in logs
    bodies = "".join(m["body"] for m in endpoint.stored())
    assert bodies.count("SiteName: DEMO-SITE") == servers
    assert QueueSimple(str(spool)).count() == 0
