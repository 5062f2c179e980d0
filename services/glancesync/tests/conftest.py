"""Three real Glances across two Keystones, from the demo cloud.

The master is RegionOne of the demo cloud; the ``master`` target is its
RegionTwo (same Keystone, its own Glance); the ``cloudb`` target is the
second demo cloud (its own Keystone and Glance). Every test starts from no
test images anywhere: they all carry the ``gs-`` name prefix.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fedcloud_common.settings.glancesync import GlanceSyncSettings
from fedcloud_glancesync.images import Image

PREFIX = "gs-"
MARK = "gs_sync"  # the property (metadata_set) that selects the tests' images
CLI = str(Path(sys.executable).parent / "fedcloud-glancesync")


@dataclasses.dataclass
class Glances:
    demo: Any
    password: Path
    master: Any  # openstack connections
    two: Any
    cloudb: Any

    @property
    def cloudb_auth_url(self) -> str:
        return f"http://localhost:{5010 + self.demo.port_offset}/v3"

    def credentials(self, auth_url: str) -> dict[str, object]:
        return {
            "auth_url": auth_url,
            "username": "fedcloud",
            "password_file": str(self.password),
            "project_name": "fedcloud-ops",
            "timeout_s": 10,
        }

    def settings(self, state: Path, **policy: Any) -> GlanceSyncSettings:
        policy = {"selection": {"metadata_set": [MARK]}, **policy}
        return GlanceSyncSettings.model_validate(
            {
                "master_region": "RegionOne",
                "master": self.credentials(self.demo.auth_url),
                "targets": {
                    "master": {
                        "openstack": self.credentials(self.demo.auth_url),
                        "policy": policy,
                    },
                    "cloudb": {
                        "openstack": self.credentials(self.cloudb_auth_url),
                        "policy": policy,
                    },
                },
                "parallelism": 3,
                "state_dir": str(state),
            }
        )

    def regions(self) -> dict[str, Any]:
        return {"RegionTwo": self.two, "cloudb:RegionOne": self.cloudb}


def put_image(
    conn: Any, name: str, data: bytes, visibility: str = "public", **properties: str
) -> Image:
    body = {
        "name": name,
        "disk_format": "raw",
        "container_format": "bare",
        "visibility": visibility,
        **properties,
    }
    reply = conn.image.post("/images", json=body)
    image_id = reply.json()["id"]
    conn.image.put(
        f"/images/{image_id}/file",
        data=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    return get_image(conn, image_id)


def get_image(conn: Any, image_id: str) -> Image:
    return Image.from_glance(conn.image.get(f"/images/{image_id}").json())


def images(conn: Any, prefix: str = PREFIX) -> list[Image]:
    """The project's own test images, by name then id."""
    found = conn.image.get("/images", params={"limit": 1000}).json()["images"]
    own = conn.current_project_id
    return sorted(
        (
            Image.from_glance(body)
            for body in found
            if body["name"].startswith(prefix) and body["owner"] == own
        ),
        key=lambda i: (i.name, i.id),
    )


def named(conn: Any, name: str) -> list[Image]:
    return [i for i in images(conn) if i.name == name]


def sha512(data: bytes) -> str:
    return hashlib.sha512(data).hexdigest()


def run_cli(
    settings: GlanceSyncSettings, state: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    path = state / "glancesync.json"
    path.write_text(settings.model_dump_json())
    return subprocess.run(
        [CLI, "-c", str(path), *args], capture_output=True, text=True, timeout=300, check=False
    )


def _clean(conn: Any) -> None:
    for image in images(conn):
        conn.image.delete(f"/images/{image.id}")


@pytest.fixture(scope="session")
def glances(demo_cloud: Any, tmp_path_factory: pytest.TempPathFactory) -> Glances:
    password = tmp_path_factory.mktemp("glancesync-secrets") / "password"
    password.write_text("fedcloudpass\n")
    password.chmod(0o600)
    return Glances(
        demo=demo_cloud,
        password=password,
        master=demo_cloud.connect(),
        two=demo_cloud.connect(region_name="RegionTwo"),
        cloudb=demo_cloud.connect("fedcloud-demo-b"),
    )


@pytest.fixture
def clean(glances: Glances) -> Iterator[Glances]:
    """No test image in any of the three Glances, before and after."""
    for conn in (glances.master, glances.two, glances.cloudb):
        _clean(conn)
    yield glances
    for conn in (glances.master, glances.two, glances.cloudb):
        _clean(conn)


def dump(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)
