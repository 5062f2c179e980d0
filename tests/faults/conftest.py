"""Fixtures of the fault corpus: real servers and real state to break.

The list/image server and the signing PKI come from tests/support/listserver.py,
the AMS stand-in and its PKI from the accounting tests' conftest, slapd from
the BDII tests' conftest: one copy of each, imported here so the corpus uses
the very helpers the package tests use.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from pathlib import Path

import pytest

from services.accounting.tests.conftest import endpoint, pki  # noqa: F401  (fixtures)
from services.bdii.tests.conftest import ldapsearch, open_tmp, start_slapd  # noqa: F401
from tests.support.listserver import GlanceFaults, Signing, image_entry, image_list


@pytest.fixture(scope="module")
def signing(tmp_path_factory: pytest.TempPathFactory) -> Signing:
    made = Signing(tmp_path_factory.mktemp("signing"))
    yield made
    made.server.stop()


def qcow2(tmp_path: Path, seed: str, megabytes: int = 4) -> bytes:
    """A small real qcow2 image (made by qemu-img) whose bytes differ with ``seed``."""
    path, raw = tmp_path / f"{seed}.qcow2", tmp_path / f"{seed}.raw"
    raw.write_bytes(hashlib.sha512(seed.encode()).digest() * 64)
    subprocess.run(["qemu-img", "create", "-f", "qcow2", str(path), f"{megabytes}M"],
                   check=True, capture_output=True)  # fmt: skip
    subprocess.run(["qemu-img", "dd", "-f", "raw", "-O", "qcow2", f"if={raw}", f"of={path}",
                    "bs=4096", "count=1"], check=True, capture_output=True)  # fmt: skip
    return path.read_bytes()


def spool_files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes: what "nothing lost or changed" compares."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


class Site:
    """One site's image replication against the demo cloud's real Glance.

    Its own managed tag keeps its images apart from every other test's.
    ``snapshot`` is what "Glance unchanged" compares: id, status, checksum
    and properties of every image carrying the tag.
    """

    def __init__(self, demo_cloud, signing: Signing, tmp_path: Path) -> None:
        from fedcloud_cloudkeeper.config import Config

        self.tag = f"ck-fault-{uuid.uuid4().hex[:8]}"
        self.signing, self.tmp, self.demo_cloud = signing, tmp_path, demo_cloud
        self.config = Config(
            lists=(signing.source("demo", self.list_path, project="vo-demo"),),
            ca_path=signing.ca_dir,
            state_dir=tmp_path / "state",
            cache_dir=tmp_path / "cache",
            spool_dir=tmp_path / "spool",
            cloud="fedcloud-demo",
            clouds_yaml=demo_cloud.clouds_yaml,
            https_verify=str(signing.ca_dir),
            tag=self.tag,
            retries=0,
            backoff_s=0.1,
            reserve_bytes=0,
        )
        self.admin = demo_cloud.connect(cloud="fedcloud-demo-admin")

    @property
    def list_path(self) -> str:
        return f"/lists/{self.tag}"

    def entry(self, identifier: str, data: bytes, version: str = "1.0") -> dict:
        self.signing.server.files[f"/images/{identifier}"] = data
        made = image_entry(identifier, data, self.signing.server.url)
        made["hv:image"]["hv:version"] = version
        return made

    def publish(self, entries: list[dict], **overrides: object) -> None:
        self.signing.publish(self.list_path, image_list(entries, **overrides))

    def sync(self, config=None):
        """The job, then the backend draining the spool: (job report, backend counts)."""
        from fedcloud_cloudkeeper.backend import Backend
        from fedcloud_cloudkeeper.glance import Glance, connector
        from fedcloud_cloudkeeper.job import Job
        from fedcloud_cloudkeeper.spool import Spool

        config = config or self.config
        glance = Glance(connector(config.cloud, config.clouds_yaml), config.tag)
        report = Job(config, glance).sync()
        drained = Backend(glance, Spool(config.spool_dir), config.state_dir).drain()
        return report, drained

    def snapshot(self) -> dict:
        return {
            (i.properties or {}).get("APPLIANCE_ID"): (
                i.id, i.status, i.checksum, json.dumps(i.properties, sort_keys=True)
            )
            for i in self.admin.image.images(tag=self.tag)
        }  # fmt: skip

    def status(self) -> dict:
        """What the status files say: lists.json and images-demo.json, as read by the page."""
        directory = self.config.state_dir / "status"
        read = {}
        for name in ("lists.json", "images-demo.json"):
            path = directory / name
            read[name] = json.loads(path.read_text()) if path.exists() else {}
        return read

    def cached_files(self) -> list[Path]:
        return [p for p in self.config.cache_dir.rglob("*") if p.is_file()]

    def remove_all(self) -> None:
        for image in self.admin.image.images(tag=self.tag):
            self.admin.image.delete_image(image.id)


@pytest.fixture(scope="module")
def installed(demo_cloud, signing, tmp_path_factory):
    """A site with one image ("base", version 1.0) in Glance, shared by a module's cases.

    Each case breaks something, checks, and the ``site`` fixture puts the good
    list back and checks Glance still holds exactly the installed image.
    """
    tmp = tmp_path_factory.mktemp("site")
    made = Site(demo_cloud, signing, tmp)
    made.base = made.entry("base", qcow2(tmp, "base"))
    made.publish([made.base])
    report, drained = made.sync()
    assert not report.failed and drained["failed"] == 0, (report, drained)
    made.before = made.snapshot()
    assert list(made.before) == ["base"]
    yield made
    made.remove_all()


@pytest.fixture
def site(installed, tmp_path):
    installed.tmp = tmp_path
    yield installed
    installed.base = installed.entry("base", qcow2(tmp_path, "base"))
    installed.publish([installed.base])


@pytest.fixture
def glance_faults(demo_cloud):
    """The fault proxy in front of the demo cloud's Glance."""
    glance = demo_cloud.connect().image.get_endpoint().rstrip("/").removesuffix("/v2")
    proxy = GlanceFaults(glance)
    yield proxy
    proxy.stop()


def clouds_yaml_via(demo_cloud, proxy: GlanceFaults, path: Path) -> Path:
    """The demo clouds.yaml with Glance reached through the fault proxy."""
    text = demo_cloud.clouds_yaml.read_text()
    override = f"    region_name: RegionOne\n    image_endpoint_override: {proxy.url}"
    path.write_text(text.replace("    region_name: RegionOne", override))
    return path
