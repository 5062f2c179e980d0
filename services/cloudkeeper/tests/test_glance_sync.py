"""Image lists replicated into the demo cloud's real Glance, end to end.

Each test signs lists with the test CA, serves them (and the images) over
HTTPS, runs the job (fetch, verify, download) and then the backend (the only
Glance writer) and looks at Glance through the admin's eyes. Each test gets
its own managed tag, so tests cannot see each other's images.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest

from fedcloud_cloudkeeper.backend import Backend
from fedcloud_cloudkeeper.config import Config
from fedcloud_cloudkeeper.glance import Glance, connector
from fedcloud_cloudkeeper.job import Job
from fedcloud_cloudkeeper.spool import Spool
from fedcloud_common.summary import parse_summary
from tests.support.testca import TestCA

from .conftest import DATE, GlanceFaults, image_entry, image_list, sign

pytestmark = pytest.mark.e2e

OVF = """<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"
          xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References><File ovf:id="file1" ovf:href="{disk}"/></References>
  <DiskSection><Disk ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:capacity="4"/></DiskSection>
</Envelope>
"""

NOW = datetime.datetime.now(datetime.UTC)


def qcow2(tmp_path: Path, megabytes: int, seed: str) -> bytes:
    """A small real qcow2 image whose bytes differ with ``seed``."""
    path = tmp_path / f"{seed}.qcow2"
    subprocess.run(["qemu-img", "create", "-f", "qcow2", str(path), f"{megabytes}M"], check=True,
                   capture_output=True)  # fmt: skip
    raw = tmp_path / f"{seed}.raw"
    raw.write_bytes(hashlib.sha512(seed.encode()).digest() * 64)
    subprocess.run(["qemu-img", "dd", "-f", "raw", "-O", "qcow2", f"if={raw}", f"of={path}",
                    "bs=4096", "count=1"], check=True, capture_output=True)  # fmt: skip
    return path.read_bytes()


class Site:
    """One appliance: config, job, backend, and an admin view of Glance."""

    def __init__(self, demo_cloud, signing, tmp_path: Path, **config: object) -> None:
        self.tag = f"ck-test-{uuid.uuid4().hex[:8]}"
        self.signing = signing
        self.tmp = tmp_path
        values: dict = {
            "lists": (signing.source("demo", f"/lists/{self.tag}", project="vo-demo"),),
            "ca_path": signing.ca_dir,
            "state_dir": tmp_path / "state",
            "cache_dir": tmp_path / "cache",
            "spool_dir": tmp_path / "spool",
            "cloud": "fedcloud-demo",
            "clouds_yaml": demo_cloud.clouds_yaml,
            "https_verify": str(signing.ca_dir),
            "tag": self.tag,
            "retries": 1,
            "backoff_s": 0.1,
            "reserve_bytes": 0,
        }
        values.update(config)
        self.config = Config(**values)
        self.admin = demo_cloud.connect(cloud="fedcloud-demo-admin")
        self.demo_cloud = demo_cloud

    @property
    def list_path(self) -> str:
        return f"/lists/{self.tag}"

    def serve_image(self, identifier: str, data: bytes) -> dict:
        self.signing.server.files[f"/images/{identifier}"] = data
        return image_entry(identifier, data, self.signing.server.url)

    def publish(self, entries: list[dict], path: str | None = None, **overrides: object) -> None:
        self.signing.publish(path or self.list_path, image_list(entries, **overrides))

    def sync(self, clock: datetime.datetime | None = None, config: Config | None = None):
        config = config or self.config
        clock_fn = (lambda: clock) if clock else (lambda: datetime.datetime.now(datetime.UTC))
        glance = Glance(connector(config.cloud, config.clouds_yaml), config.tag)
        report = Job(config, glance, clock=clock_fn).sync()
        drained = Backend(glance, Spool(config.spool_dir), config.state_dir,
                          config.event_hook, clock=clock_fn).drain()  # fmt: skip
        return report, drained

    def images(self) -> dict[str, object]:
        """Every image carrying our tag, by (list, identifier)."""
        found = {}
        for image in self.admin.image.images(tag=self.tag):
            props = image.properties or {}
            found[(props.get("fedcloud_image_list"), props.get("APPLIANCE_ID"))] = image
        return found

    def remove_all(self) -> None:
        """Keep the shared demo Glance small: drop what this test made."""
        for image in self.admin.image.images(tag=self.tag):
            self.admin.image.delete_image(image.id)

    def snapshot(self) -> dict:
        return {
            key: (
                i.id,
                i.status,
                i.name,
                i.visibility,
                i.checksum,
                json.dumps(i.properties, sort_keys=True),
            )
            for key, i in self.images().items()
        }


@pytest.fixture
def site(demo_cloud, signing, tmp_path):
    made = Site(demo_cloud, signing, tmp_path)
    yield made
    made.remove_all()


def test_a_new_list_lands_shared_with_the_vo_and_described_for_consumers(site, tmp_path):
    data = qcow2(tmp_path, 8, "add")
    site.publish([site.serve_image("ubuntu", data)])
    report, drained = site.sync()
    assert not report.failed and drained["failed"] == 0
    image = site.images()[("demo", "ubuntu")]
    assert image.status == "active" and image.disk_format == "qcow2"
    assert image.visibility == "shared" and image.min_ram == 512
    assert site.tag in image.tags
    assert image.hash_value == hashlib.sha512(data).hexdigest()
    props = site.admin.image.get(f"/images/{image.id}").json()  # flat, as the API shows it
    assert props["vmcatcher_event_ad_mpuri"].startswith("https://appdb.example.org/store/vo/image/")
    assert props["vmcatcher_event_dc_title"] == "Image ubuntu"
    assert props["os_distro"] == "ubuntu" and props["os_version"] == "24.04"
    assert props["architecture"] == "x86_64" and props["APPLIANCE_VO"] == "vo.demo.example"
    assert json.loads(props["APPLIANCE_ATTRIBUTES"])["ad:base_mpuri"].startswith("https://")
    # Both old conventions: atrope's names and cloudkeeper-os' status.
    assert props["appdb_id"] == "ubuntu" and props["image_list"] == "demo"
    assert props["vo"] == "vo.demo.example" and props["APPLIANCE_STATUS"] == "ACTIVE"
    assert props["image_hash"] == f"sha512:{hashlib.sha512(data).hexdigest()}"
    vo = site.demo_cloud.connect(project_name="vo-demo")
    member = vo.image.get_member(vo.current_project_id, image.id)
    assert member.status == "accepted"
    assert image.id in [i.id for i in vo.image.images()]
    # Files are gone once the backend has them in Glance.
    assert not any(p.is_file() for p in site.config.cache_dir.rglob("*"))


def test_an_ova_lands_as_the_qcow2_of_the_disk_its_ovf_names(site, tmp_path):
    source = tmp_path / "ova.qcow2"
    source.write_bytes(qcow2(tmp_path, 4, "ova"))
    vmdk = tmp_path / "disk1.vmdk"
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "vmdk", str(source), str(vmdk)],
                   check=True, capture_output=True)  # fmt: skip
    ovf = tmp_path / "appliance.ovf"
    ovf.write_text(OVF.format(disk="disk1.vmdk"))
    ova = tmp_path / "appliance.ova"
    with tarfile.open(ova, "w", format=tarfile.USTAR_FORMAT) as archive:
        archive.add(ovf, "appliance.ovf")
        archive.add(vmdk, "disk1.vmdk")
    entry = site.serve_image("cernvm", ova.read_bytes())
    entry["hv:image"]["hv:format"] = "OVA"
    site.publish([entry])
    report, drained = site.sync()
    assert not report.failed and drained["failed"] == 0
    image = site.images()[("demo", "cernvm")]
    assert (image.status, image.disk_format) == ("active", "qcow2")
    assert (
        image.properties["image_hash"] == f"sha512:{hashlib.sha512(ova.read_bytes()).hexdigest()}"
    )


def test_a_list_without_project_gives_private_images(site, signing, tmp_path):
    site.config = site.config.model_copy(
        update={"lists": (signing.source("priv", site.list_path),)}
    )
    site.publish([site.serve_image("private-img", qcow2(tmp_path, 4, "private"))], vo=None)
    site.sync()
    assert site.images()[("priv", "private-img")].visibility == "private"


def test_a_new_version_is_uploaded_before_the_old_one_goes(site, tmp_path):
    site.publish([site.serve_image("rolling", qcow2(tmp_path, 4, "v1"))])
    site.sync()
    old = site.images()[("demo", "rolling")]
    new_data = qcow2(tmp_path, 4, "v2")
    site.publish([site.serve_image("rolling", new_data) | {}])
    entry = site.serve_image("rolling", new_data)
    entry["hv:image"]["hv:version"] = "2.0"
    site.publish([entry])
    report, drained = site.sync()
    assert drained["failed"] == 0
    assert [a.verb for o in report.lists for a in o.actions] == ["replace", "retire"]
    now = site.images()[("demo", "rolling")]
    assert now.id != old.id and now.hash_value == hashlib.sha512(new_data).hexdigest()
    assert now.properties["APPLIANCE_VERSION"] == "2.0"
    assert len(site.images()) == 1


def test_a_metadata_change_updates_the_image_in_place(site, tmp_path):
    entry = site.serve_image("meta", qcow2(tmp_path, 4, "meta"))
    site.publish([entry])
    site.sync()
    before = site.images()[("demo", "meta")]
    entry["hv:image"].update({"dc:title": "Renamed", "hv:ram_minimum": "2048"})
    site.publish([entry])
    report, _ = site.sync()
    assert [a.verb for o in report.lists for a in o.actions] == ["update"]
    after = site.images()[("demo", "meta")]
    assert after.id == before.id and after.name == "Renamed" and after.min_ram == 2048
    assert after.properties["vmcatcher_event_dc_title"] == "Renamed"


def test_an_unchanged_list_changes_nothing_and_queues_nothing(site, tmp_path):
    site.publish([site.serve_image("still", qcow2(tmp_path, 4, "still"))])
    site.sync()
    before = site.snapshot()
    report, drained = site.sync()
    assert [a.verb for o in report.lists for a in o.actions] == ["keep"]
    assert drained["requests"] == 0 and site.snapshot() == before


def test_an_image_removed_from_the_list_is_deleted_and_unmanaged_ones_are_untouched(site, tmp_path):
    site.publish([site.serve_image("stay", qcow2(tmp_path, 4, "stay")),
                  site.serve_image("go", qcow2(tmp_path, 4, "go"))])  # fmt: skip
    site.sync()
    # The same title and properties, but no tag: not ours.
    lookalike = site.admin.image.create_image(
        name="Image go", disk_format="raw", container_format="bare", data=b"x" * 1024,
        allow_duplicates=True, APPLIANCE_ID="go", fedcloud_image_list="demo",
    )  # fmt: skip
    try:
        site.publish([site.serve_image("stay", qcow2(tmp_path, 4, "stay"))])
        site.sync()
        assert set(site.images()) == {("demo", "stay")}
        assert site.admin.image.get_image(lookalike.id).status == "active"
    finally:
        site.admin.image.delete_image(lookalike.id)


def test_an_image_glance_will_not_delete_is_made_private_and_deactivated(site, tmp_path):
    site.publish([site.serve_image("stuck", qcow2(tmp_path, 4, "stuck"))])
    site.sync()
    stuck = site.images()[("demo", "stuck")]
    site.admin.image.update_image(stuck.id, is_protected=True)  # Glance refuses to delete it
    try:
        site.publish([])
        _, drained = site.sync()
        assert drained["failed"] == 0
        after = site.admin.image.get_image(stuck.id)
        assert (after.status, after.visibility) == ("deactivated", "private")
        assert after.properties["APPLIANCE_STATUS"] == "EOL"  # cloudkeeper-os' mark
        status = json.loads((site.config.state_dir / "status" / "images-demo.json").read_text())
        assert status["images"]["stuck"]["reason"] == "no longer in the list: deactivated"
    finally:
        site.admin.image.update_image(stuck.id, is_protected=False)


def test_an_expired_image_is_retired(site, tmp_path):
    entry = site.serve_image("short", qcow2(tmp_path, 4, "short"))
    entry["hv:image"]["dc:date:expires"] = (NOW + datetime.timedelta(days=1)).strftime(DATE)
    site.publish([entry, site.serve_image("long", qcow2(tmp_path, 4, "long"))])
    site.sync()
    assert set(site.images()) == {("demo", "short"), ("demo", "long")}
    report, _ = site.sync(clock=NOW + datetime.timedelta(days=2))
    assert [a.reason for o in report.lists for a in o.actions if a.verb == "retire"] == [
        "image expired"
    ]
    assert set(site.images()) == {("demo", "long")}


def test_when_the_last_trusted_list_expires_its_images_go_even_if_the_server_is_down(
    site, tmp_path
):
    site.publish([site.serve_image("ephemeral", qcow2(tmp_path, 4, "eph"))])
    site.sync()
    del site.signing.server.files[site.list_path]
    report, _ = site.sync(clock=NOW + datetime.timedelta(days=8))
    assert report.failed
    assert site.images() == {}


def test_two_lists_with_the_same_identifier_get_one_image_each(site, signing, tmp_path):
    second = f"{site.list_path}-b"
    site.config = site.config.model_copy(
        update={
            "lists": (
                signing.source("one", site.list_path),
                signing.source("two", second, prefix="B "),
            )
        }
    )
    entry = site.serve_image("shared-id", qcow2(tmp_path, 4, "shared"))
    site.publish([entry], vo=None)
    site.publish([entry], path=second, vo=None, **{"dc:identifier": str(uuid.uuid4())})
    site.sync()
    images = site.images()
    assert set(images) == {("one", "shared-id"), ("two", "shared-id")}
    assert images[("two", "shared-id")].name == "B Image shared-id"
    # Dropping the image from one list leaves the other's alone.
    site.publish([], vo=None)
    site.sync()
    assert set(site.images()) == {("two", "shared-id")}


# -- bad input: each case must leave the managed images exactly as they were --


@pytest.fixture
def installed(site, tmp_path):
    site.base_data = qcow2(tmp_path, 4, "base")
    site.base_entry = site.serve_image("base", site.base_data)
    site.publish([site.base_entry])
    site.sync()
    site.before = site.snapshot()
    assert len(site.before) == 1
    return site


def _bad_signature(site, tmp_path):
    message = sign(json.dumps(image_list([])).encode(), *site.signing.endorser)
    site.signing.server.files[site.list_path] = message.replace(
        b'"hv:images": []', b'"hv:images":[]'
    )


def _wrong_endorser(site, tmp_path):
    other = site.signing.ca.issue(f"other-{site.tag}", "/DC=org/DC=example/CN=not-appdb")
    document = image_list([])
    document["hv:imagelist"]["hv:endorser"]["hv:x509"]["hv:dn"] = "/DC=org/DC=example/CN=not-appdb"
    site.signing.publish(site.list_path, document, signer=other)


def _untrusted_ca(site, tmp_path):
    rogue = TestCA(tmp_path / "rogue", dn="/DC=org/DC=example/CN=Rogue CA")
    signer = rogue.issue("endorser", "/DC=org/DC=example/O=Endorsers/CN=appdb.example.org")
    document = image_list([])
    site.signing.server.files[site.list_path] = sign(json.dumps(document).encode(), *signer)


def _dated(field, delta):
    def publish(site, tmp_path):
        when = (NOW + datetime.timedelta(days=delta)).strftime(DATE)
        site.publish([], **{field: when})

    return publish


def _malformed_json(site, tmp_path):
    site.signing.server.files[site.list_path] = sign(b'{"hv:imagelist": [', *site.signing.endorser)


def _missing_field(site, tmp_path):
    entry = json.loads(json.dumps(site.base_entry))
    del entry["hv:image"]["sl:checksum:sha512"]
    site.publish([entry])


def _path_identifier(site, tmp_path):
    entry = json.loads(json.dumps(site.base_entry))
    entry["hv:image"]["dc:identifier"] = "../base"
    site.publish([entry])


def _new_version_with(mutate):
    def publish(site, tmp_path):
        data = qcow2(tmp_path, 4, "next")
        entry = site.serve_image("base", data)
        entry["hv:image"]["hv:version"] = "2.0"
        mutate(site, entry, data)
        site.publish([entry])

    return publish


def _checksum(site, entry, data):
    entry["hv:image"]["sl:checksum:sha512"] = hashlib.sha512(b"other").hexdigest()


def _size(site, entry, data):
    entry["hv:image"]["hv:size"] = str(len(data) + 10)
    site.signing.server.files["/images/base"] = data + b"0123456789" * 2


def _truncated(site, entry, data):
    site.signing.server.files["/images/base"] = data[: len(data) // 2]


def _unsupported(site, entry, data):
    junk = b"KDMV" + os.urandom(4092)
    site.signing.server.files["/images/base"] = junk
    entry["hv:image"].update({"hv:size": str(len(junk)),
                              "sl:checksum:sha512": hashlib.sha512(junk).hexdigest()})  # fmt: skip


def _server_down(site, tmp_path):
    source = site.config.lists[0].model_copy(update={"url": "https://localhost:1/lists/x"})
    site.config = site.config.model_copy(update={"lists": (source,)})


@pytest.mark.parametrize(
    ("break_it", "reason"),
    [
        pytest.param(_bad_signature, "signature check failed", id="tampered-signature"),
        pytest.param(_wrong_endorser, "not the configured endorser", id="wrong-endorser-dn"),
        pytest.param(_untrusted_ca, "unable to get local issuer certificate", id="untrusted-ca"),
        pytest.param(_dated("dc:date:expires", -1), "expired at", id="expired-list"),
        pytest.param(_dated("dc:date:created", +1), "not valid before", id="not-yet-valid-list"),
        pytest.param(_malformed_json, "not JSON", id="malformed-json"),
        pytest.param(_missing_field, "sl:checksum:sha512: missing", id="missing-required-field"),
        pytest.param(_path_identifier, "not a plain identifier", id="identifier-with-path"),
        pytest.param(_new_version_with(_checksum), "SHA-512 differs", id="checksum-mismatch"),
        pytest.param(_new_version_with(_size), "more than hv:size", id="size-mismatch"),
        pytest.param(_new_version_with(_truncated), "fewer than hv:size", id="truncated-download"),
        pytest.param(
            _new_version_with(_unsupported), "qemu-img cannot read it", id="unsupported-format"
        ),
        pytest.param(_server_down, "ConnectionError", id="list-server-down"),
    ],
)
def test_bad_input_leaves_glance_exactly_as_it_was(installed, tmp_path, break_it, reason):
    break_it(installed, tmp_path)
    report, _ = installed.sync()
    assert report.failed
    (outcome,) = report.lists
    assert reason in " ".join([outcome.reason, *outcome.errors])
    assert installed.snapshot() == installed.before
    assert not [p for p in installed.config.cache_dir.rglob("*") if p.is_file()]


def test_an_older_signed_list_replayed_later_is_refused(installed, tmp_path):
    installed.publish([], **{"dc:date:created": (NOW - datetime.timedelta(days=3)).strftime(DATE)})
    report, _ = installed.sync()
    assert "replay" in report.lists[0].reason
    assert installed.snapshot() == installed.before


@pytest.fixture
def faults(demo_cloud):
    glance = demo_cloud.connect().image.get_endpoint().rstrip("/")
    glance = glance.removesuffix("/v2")
    proxy = GlanceFaults(glance)
    yield proxy
    proxy.stop()


def _clouds_yaml_via(demo_cloud, proxy: GlanceFaults, path: Path) -> Path:
    """The demo clouds.yaml with Glance reached through the fault proxy."""
    text = demo_cloud.clouds_yaml.read_text()
    override = f"    region_name: RegionOne\n    image_endpoint_override: {proxy.url}"
    path.write_text(text.replace("    region_name: RegionOne", override))
    return path


def test_glance_failing_mid_upload_keeps_the_old_version_and_the_next_run_recovers(
    installed, demo_cloud, faults, tmp_path
):
    data = qcow2(tmp_path, 4, "v2-5xx")
    entry = installed.serve_image("base", data)
    entry["hv:image"]["hv:version"] = "2.0"
    installed.publish([entry])
    faulty = installed.config.model_copy(
        update={"clouds_yaml": _clouds_yaml_via(demo_cloud, faults, tmp_path / "c.yaml")}
    )
    faults.fail_upload = 503
    _, drained = installed.sync(config=faulty)
    assert faults.upload_started.is_set()
    assert drained["failed"] == 1
    assert installed.snapshot() == installed.before  # old version serving, no half image
    status = json.loads((installed.config.state_dir / "status" / "images-demo.json").read_text())
    assert status["images"]["base"]["state"] == "error"
    assert "HTTP 503" in status["images"]["base"]["reason"]
    # Exactly one upload attempt: a client-side retry would resend a half-read file.
    assert [m for m, p, _ in faults.seen if p.endswith("/file")] == ["PUT"]
    _, drained = installed.sync(config=faulty)
    assert drained["failed"] == 0
    (image,) = installed.images().values()
    assert image.hash_value == hashlib.sha512(data).hexdigest()


def test_a_backend_killed_mid_upload_finishes_the_work_when_restarted(
    site, demo_cloud, faults, tmp_path
):
    site.publish([site.serve_image("crash", qcow2(tmp_path, 4, "crash"))])
    glance = Glance(connector(site.config.cloud, site.config.clouds_yaml), site.tag)
    Job(site.config, glance).sync()
    assert len(Spool(site.config.spool_dir).pending()) == 1
    config_file = tmp_path / "cloudkeeper.json"
    config_file.write_text(json.dumps({
        "lists": [], "cloud": "fedcloud-demo", "tag": site.tag,
        "clouds_yaml": str(_clouds_yaml_via(demo_cloud, faults, tmp_path / "c.yaml")),
        **{k: str(getattr(site.config, k)) for k in ("state_dir", "spool_dir", "cache_dir")},
    }))  # fmt: skip
    faults.stall_upload = True
    backend = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "cloudkeeper-os"),
            "--config",
            str(config_file),
            "drain",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert faults.upload_started.wait(60), "the backend never started uploading"
        half_made = [i for i in site.admin.image.images(tag=site.tag)]
        assert [i.status for i in half_made] == ["queued"]
    finally:
        backend.kill()
        backend.wait()
        faults.release.set()
    # Restarted: the request is still spooled, the half-made image is cleared first.
    assert len(Spool(site.config.spool_dir).pending()) == 1
    drained = Backend(glance, Spool(site.config.spool_dir), site.config.state_dir).drain()
    assert drained["failed"] == 0 and drained["clean"] == 1 and drained["add"] == 1
    images = site.images()
    assert set(images) == {("demo", "crash")} and images[("demo", "crash")].status == "active"
    assert half_made[0].id not in [i.id for i in site.admin.image.images(tag=site.tag)]


def _cli(name: str, config_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / name), "--config", str(config_path), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def _summary(done: subprocess.CompletedProcess[str]) -> tuple[str, str, dict[str, str]]:
    return parse_summary(done.stdout.strip().splitlines()[-1])


def _rendered(site, **overrides: object) -> dict[str, object]:
    """The CLI's settings for the site's one list, as the render step writes them."""
    source = site.config.lists[0]
    return {
        "lists": [{"name": source.name, "url": source.url, "endorser_dn": source.endorser_dn,
                   "endorser_ca": source.endorser_ca, "project": "vo-demo"}],
        **{key: str(getattr(site.config, key)) for key in
           ("ca_path", "state_dir", "cache_dir", "spool_dir", "clouds_yaml", "https_verify")},
        "cloud": "fedcloud-demo", "tag": site.tag, "retries": 0, **overrides,
    }  # fmt: skip


def _config_file(site, tmp_path: Path, **overrides: object) -> Path:
    path = tmp_path / "cloudkeeper.json"
    path.write_text(json.dumps(_rendered(site, **overrides)))
    return path


def test_the_command_line_dry_runs_syncs_reports_status_and_cleans_up(site, tmp_path):
    site.publish([site.serve_image("cli", qcow2(tmp_path, 4, "cli"))])
    config_file = tmp_path / "cloudkeeper.json"
    rendered = _rendered(site)
    config_file.write_text(json.dumps(rendered))

    dry = _cli("cloudkeeper", config_file, "sync", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would add cli (Image cli): new in the list" in dry.stdout
    assert _summary(dry)[:2] == ("cloudkeeper-sync", "ok") and _summary(dry)[2]["add"] == "1"
    assert site.images() == {}

    verify = _cli("cloudkeeper", config_file, "verify", "demo")
    assert verify.returncode == 0 and "cli  1.0" in verify.stdout

    done = _cli("cloudkeeper", config_file, "sync")
    assert done.returncode == 0, done.stderr
    pending = _cli("cloudkeeper", config_file, "status")
    assert "requests waiting for cloudkeeper-os: 1" in pending.stdout
    drained = _cli("cloudkeeper-os", config_file, "drain")
    assert drained.returncode == 0, drained.stderr
    assert _summary(drained)[2]["add"] == "1"
    stored = site.images()[("demo", "cli")].size
    assert int(_summary(drained)[2]["uploaded_bytes"]) == stored
    status = _cli("cloudkeeper", config_file, "status")
    assert "list demo: ok" in status.stdout and "image cli: ok: new in the list" in status.stdout
    assert set(site.images()) == {("demo", "cli")}

    del site.signing.server.files[site.list_path]
    failed = _cli("cloudkeeper", config_file, "sync")
    assert failed.returncode == 1 and _summary(failed)[1] == "failed"
    assert "list demo: error" in _cli("cloudkeeper", config_file, "status").stdout

    rendered["lists"] = []
    config_file.write_text(json.dumps(rendered))
    cleaned = _cli("cloudkeeper", config_file, "cleanup")
    assert cleaned.returncode == 0 and "retire cli" in cleaned.stdout
    _cli("cloudkeeper-os", config_file, "drain")
    assert site.images() == {}


def test_sync_wait_ends_when_the_backend_has_applied_or_says_it_has_not(site, tmp_path):
    served = qcow2(tmp_path, 4, "waited")
    site.publish([site.serve_image("waited", served)])
    config_file = _config_file(site, tmp_path)

    # No backend running: the run says so instead of claiming success.
    unapplied = _cli("cloudkeeper", config_file, "sync", "--wait", "3")
    assert unapplied.returncode == 1
    _, outcome, counts = _summary(unapplied)
    assert (outcome, counts["planned"], counts["applied"], counts["not_applied"]) == (
        "failed", "1", "0", "1")  # fmt: skip
    assert "not applied by cloudkeeper-os within 3 s" in counts["reason"]
    assert int(counts["downloaded_bytes"]) == len(served)  # what this run fetched
    assert site.images() == {}

    backend = subprocess.Popen(
        [str(Path(sys.executable).parent / "cloudkeeper-os"), "--config", str(config_file),
         "serve", "--poll", "0.5"]
    )  # fmt: skip
    try:
        applied = _cli("cloudkeeper", config_file, "sync", "--wait", "120")
    finally:
        backend.terminate()
        backend.wait(30)
    assert applied.returncode == 0, applied.stderr
    _, outcome, counts = _summary(applied)
    # The backend may apply the first run's request before this run plans
    # (then it plans nothing): either way the image is in Glance, and ok.
    assert (outcome, counts["failed"]) == ("ok", "0")
    assert "not_applied" not in counts and "reason" not in counts
    assert set(site.images()) == {("demo", "waited")}  # in Glance when the run ends


def test_glance_failing_mid_upload_fails_the_waiting_run_with_the_reason(
    site, demo_cloud, faults, tmp_path
):
    """The job waits for what cloudkeeper-os applied, not for the queue to empty."""
    site.publish([site.serve_image("broken", qcow2(tmp_path, 4, "broken"))])
    via_faults = _clouds_yaml_via(demo_cloud, faults, tmp_path / "c.yaml")
    config_file = _config_file(site, tmp_path, clouds_yaml=str(via_faults))
    faults.fail_upload = 503
    backend = subprocess.Popen(
        [str(Path(sys.executable).parent / "cloudkeeper-os"), "--config", str(config_file),
         "serve", "--poll", "0.5"]
    )  # fmt: skip
    try:
        run = _cli("cloudkeeper", config_file, "sync", "--wait", "120")
    finally:
        backend.terminate()
        backend.wait(30)
    assert faults.upload_started.is_set()
    assert run.returncode == 1
    _, outcome, counts = _summary(run)
    assert (outcome, counts["planned"], counts["applied"], counts["failed"]) == (
        "failed", "1", "0", "1")  # fmt: skip
    assert counts["reason"].startswith("list demo: broken: image broken: Glance upload failed")
    assert "HTTP 503" in counts["reason"]
    status = _cli("cloudkeeper", config_file, "status")
    assert status.returncode == 1 and "image broken: error:" in status.stdout
    assert site.images() == {}  # no half image left behind
