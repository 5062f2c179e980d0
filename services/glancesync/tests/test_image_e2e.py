"""The fedcloud/glancesync image: region-sync runs in it, as its non-root
user, against the demo's Glances (host network, so the catalogs'
``localhost`` resolves), writing status.json where the supervisor reads it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import docker
import pytest

from fedcloud_common.regionstatus import RunRecord
from fedcloud_common.services import RENDERED_DIR, SERVICES

from .conftest import MARK, Glances, images, put_image

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[3]
IMAGE = f"fedcloud/glancesync:{(ROOT / 'VERSION').read_text().strip()}"
UID = SERVICES["glancesync"].uid


def test_the_job_runs_in_its_image_as_its_user(clean: Glances, tmp_path: Path) -> None:
    g = clean
    put_image(g.master, "gs-image", b"i" * 1000, **{MARK: "1"})
    rendered, state = tmp_path / "rendered", tmp_path / "state"
    rendered.mkdir()
    state.mkdir()
    (rendered / "password").write_text("fedcloudpass\n")
    password = Path(RENDERED_DIR) / "password"
    settings = g.settings(Path("/var/lib/fedcloud-glancesync"))
    body = json.loads(settings.model_dump_json())
    for auth in [body["master"], *(t["openstack"] for t in body["targets"].values())]:
        auth["password_file"] = str(password)
    (rendered / "glancesync.json").write_text(json.dumps(body))
    for path in (rendered, rendered / "password", state):
        os.chown(path, UID, UID)
    os.chmod(rendered / "password", 0o400)

    client = docker.from_env()
    container = client.containers.run(
        IMAGE,
        ["fedcloud-glancesync", "-c", f"{RENDERED_DIR}/glancesync.json", "sync", "--parallel"],
        volumes={
            str(rendered): {"bind": RENDERED_DIR, "mode": "ro"},
            str(state): {"bind": "/var/lib/fedcloud-glancesync", "mode": "rw"},
        },
        network_mode="host",
        read_only=True,
        tmpfs={"/tmp": ""},
        detach=True,
    )
    try:
        exit_code = container.wait(timeout=300)["StatusCode"]
        output = container.logs().decode()
        user = client.containers.run(IMAGE, ["id", "-u"], remove=True).decode().strip()
    finally:
        container.remove(force=True)
    assert exit_code == 0, output
    assert output.strip().splitlines()[-1].startswith("region-sync ok regions=2")
    assert user == str(UID)
    record = RunRecord.model_validate_json((state / "status.json").read_text())
    assert [r.outcome for r in record.regions] == ["ok", "ok"]
    for conn in (g.two, g.cloudb):
        assert [i.name for i in images(conn)] == ["gs-image"]
