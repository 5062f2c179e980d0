"""Moving from cloudkeeper-os or atrope, against the demo cloud's real Glance.

Each test first leaves images in Glance exactly as the old tool would have
(its properties, its tag, its sharing), then runs the appliance's job and
backend with ``adopt`` set and looks at Glance through the admin's eyes.
Identifiers and list names are unique per test, so an image another test
left cannot be mistaken for this one's.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import openstack
import pytest

from fedcloud_cloudkeeper.config import Config
from tests.support.ports import free_port
from tests.support.testca import TestCA

from .test_glance_sync import Site, _cli, _summary, qcow2

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[3]
GOCDB_STANDIN = ROOT / "demo" / "gocdb" / "gocdb_standin.py"
VO = "vo.demo.example"


class Migration(Site):
    """A site that ran an old tool: its images are seeded before the appliance runs."""

    def __init__(self, demo_cloud, signing, tmp_path: Path, adopt: str) -> None:
        super().__init__(demo_cloud, signing, tmp_path)
        self.suffix = self.tag.rsplit("-", 1)[1]
        self.list_name = f"mig-{self.suffix}"
        self.list_id = str(uuid.uuid4())  # the list's dc:identifier, as cloudkeeper-os kept it
        self.adopt = adopt
        self.config = self.config.model_copy(
            update={
                "lists": (
                    signing.source(self.list_name, self.list_path, project="vo-demo", adopt=adopt),
                )
            }
        )
        self.old = demo_cloud.connect()  # the appliance's project: where the old tool wrote
        self.vo = demo_cloud.connect(project_name="vo-demo")
        self.seeded: list[str] = []

    def ident(self, name: str) -> str:
        return f"{name}-{self.suffix}"

    def publish_list(self, entries: list[dict]) -> None:
        self.publish(entries, **{"dc:identifier": self.list_id})

    def seed_atrope(
        self,
        entry: dict,
        data: bytes,
        tag: str = "atrope-catchall",
        hash_key: str = "image_hash",
        list_name: str | None = None,
    ) -> str:
        """As atrope leaves an image: its tag, its properties, shared with the VO's project."""
        image = entry["hv:image"]
        digest = hashlib.sha512(data).hexdigest()
        meta = {
            "architecture": image["sl:arch"],
            "os_distro": image["sl:osname"].lower(),
            "os_version": image["sl:osversion"],
            "vmcatcher_event_dc_description": image["dc:description"],
            "vmcatcher_event_ad_mpuri": image["ad:mpuri"],
            "appdb_id": image["dc:identifier"],
            # atrope 2.0: sha512 = hex; EGI's fork: image_hash = sha512:hex
            hash_key: f"sha512:{digest}" if hash_key == "image_hash" else digest,
            "APPLIANCE_ATTRIBUTES": json.dumps(image),
            "image_list": list_name or self.list_name,
            "vo": VO,
        }
        made = self._create(image["dc:title"], data, meta, "shared", [tag])
        project = self.vo.current_project_id
        self.old.image.add_member(made, member=project)
        self.vo.image.update_member(project, made, status="accepted")
        return made

    def seed_cloudkeeper_os(
        self,
        entry: dict,
        data: bytes,
        list_id: str | None = None,
        public: bool = False,
        conn=None,
    ) -> str:
        """As cloudkeeper-os 0.9 leaves an image: APPLIANCE_* properties, no tag, private
        (its default image_visibility) or public."""
        image = entry["hv:image"]
        meta = {
            "APPLIANCE_ID": image["dc:identifier"],
            "APPLIANCE_IMAGE_LIST_ID": list_id or self.list_id,
            "APPLIANCE_STATUS": "ACTIVE",
            "APPLIANCE_TITLE": image["dc:title"],
            "APPLIANCE_DESCRIPTION": image["dc:description"],
            "APPLIANCE_MPURI": image["ad:mpuri"],
            "APPLIANCE_GROUP": image["ad:group"],
            "APPLIANCE_RAM": image["hv:ram_minimum"],
            "APPLIANCE_CORE": image["hv:core_minimum"],
            "APPLIANCE_VERSION": image["hv:version"],
            "APPLIANCE_ARCHITECTURE": image["sl:arch"],
            "APPLIANCE_OPERATING_SYSTEM": image["sl:os"],
            "APPLIANCE_VO": VO,
            "APPLIANCE_EXPIRATION_DATE": "2099-01-01T00:00:00Z",
            "APPLIANCE_ATTRIBUTES": json.dumps(image),
            "vmcatcher_event_ad_mpuri": image["ad:mpuri"],
        }
        made = self._create(image["dc:title"], data, meta, "private", [], conn)
        if public:  # only an admin may publicise an image
            self.admin.image.update_image(made, visibility="public")
        return made

    def _create(
        self, name: str, data: bytes, meta: dict, visibility: str, tags: list, conn=None
    ) -> str:
        made = (conn or self.old).create_image(
            name,
            data=data,
            disk_format="qcow2",
            container_format="bare",
            visibility=visibility,
            tags=tags,
            wait=True,
            meta=meta,
        )
        self.seeded.append(made.id)
        return made.id

    def glance_view(self, image_id: str) -> dict | None:
        """The image as the API shows it (flat), None once deleted."""
        reply = self.admin.image.get(f"/images/{image_id}", raise_exc=False)
        return reply.json() if reply.status_code == 200 else None

    def ours(self) -> dict[str, dict]:
        return {
            image.properties["APPLIANCE_ID"]: self.glance_view(image.id)
            for image in self.admin.image.images(tag=self.tag)
        }

    def cli_config(self, tmp_path: Path) -> Path:
        source = self.config.lists[0]
        rendered = {
            "lists": [
                {
                    "name": source.name,
                    "url": source.url,
                    "endorser_dn": source.endorser_dn,
                    "endorser_ca": source.endorser_ca,
                    "project": "vo-demo",
                    "adopt": self.adopt,
                }
            ],
            **{
                key: str(getattr(self.config, key))
                for key in ("ca_path", "state_dir", "cache_dir", "spool_dir", "clouds_yaml")
            },
            "https_verify": str(self.config.https_verify),
            "cloud": "fedcloud-demo",
            "tag": self.tag,
            "retries": 0,
        }
        path = tmp_path / "cloudkeeper.json"
        path.write_text(json.dumps(rendered))
        return path

    def remove_all(self) -> None:
        super().remove_all()
        for image_id in self.seeded:
            try:
                self.admin.image.delete_image(image_id, ignore_missing=True)
            except openstack.exceptions.SDKException:
                self.admin.image.update_image(image_id, is_protected=False)
                self.admin.image.delete_image(image_id, ignore_missing=True)


@pytest.fixture(params=["atrope", "cloudkeeper-os"])
def moved(request, demo_cloud, signing, tmp_path):
    made = Migration(demo_cloud, signing, tmp_path, request.param)
    yield made
    made.remove_all()


def _seed(site: Migration, entry: dict, data: bytes) -> str:
    if site.adopt == "atrope":
        return site.seed_atrope(entry, data)
    return site.seed_cloudkeeper_os(entry, data)


def test_an_old_image_with_the_same_content_is_adopted_in_place_and_nothing_is_uploaded(
    moved, tmp_path
):
    data = qcow2(tmp_path, 4, f"same-{moved.suffix}")
    entry = moved.serve_image(moved.ident("ubuntu"), data)
    old_id = _seed(moved, entry, data)
    moved.publish_list([entry])

    report, drained = moved.sync()

    assert not report.failed and drained["failed"] == 0, report
    assert [a.verb for o in report.lists for a in o.actions] == ["adopt", "update"]
    assert report.downloaded_bytes == 0 and drained["uploaded_bytes"] == 0
    after = moved.ours()[moved.ident("ubuntu")]
    assert after["id"] == old_id and after["status"] == "active"
    assert moved.tag in after["tags"]
    assert after["fedcloud_image_list"] == moved.list_name
    assert after["fedcloud_content_digest"] and after["APPLIANCE_STATUS"] == "ACTIVE"
    assert after["appdb_id"] == moved.ident("ubuntu") and after["image_list"] == moved.list_name
    # Shared with the VO's project and accepted, whatever the old tool did.
    assert after["visibility"] == "shared"
    member = moved.vo.image.get_member(moved.vo.current_project_id, old_id)
    assert member.status == "accepted"
    status = json.loads(
        (moved.config.state_dir / "status" / f"images-{moved.list_name}.json").read_text()
    )
    image_status = status["images"][moved.ident("ubuntu")]
    assert image_status["state"] == "ok" and image_status["glance_id"] == old_id
    assert image_status["reason"].startswith(f"adopted, placed by {moved.adopt} as {old_id}")
    # The next run finds it ours and up to date.
    report, _ = moved.sync()
    assert [a.verb for o in report.lists for a in o.actions] == ["keep"]


def test_an_old_image_with_other_content_is_replaced_and_then_retired(moved, tmp_path):
    old_data = qcow2(tmp_path, 4, f"old-{moved.suffix}")
    new_data = qcow2(tmp_path, 4, f"new-{moved.suffix}")
    entry = moved.serve_image(moved.ident("centos"), new_data)
    old_entry = json.loads(json.dumps(entry))
    old_entry["hv:image"]["sl:checksum:sha512"] = hashlib.sha512(old_data).hexdigest()
    old_id = _seed(moved, old_entry, old_data)
    moved.publish_list([entry])

    report, drained = moved.sync()

    assert not report.failed and drained["failed"] == 0
    assert [a.verb for o in report.lists for a in o.actions] == ["adopt", "replace", "retire"]
    new = moved.ours()[moved.ident("centos")]
    assert new["id"] != old_id and new["os_hash_value"] == hashlib.sha512(new_data).hexdigest()
    assert moved.glance_view(old_id) is None  # retired by the usual rules: deleted


def test_two_old_images_for_one_identifier_are_reported_and_left_alone(
    demo_cloud, signing, tmp_path
):
    site = Migration(demo_cloud, signing, tmp_path, "auto")
    try:
        data = qcow2(tmp_path, 4, f"twice-{site.suffix}")
        entry = site.serve_image(site.ident("twice"), data)
        first = site.seed_atrope(entry, data, tag="atrope", hash_key="sha512")  # atrope 2.0
        second = site.seed_cloudkeeper_os(entry, data)
        single = site.serve_image(site.ident("single"), data)
        site.publish_list([entry, single])
        before = {i: site.glance_view(i) for i in (first, second)}

        config = site.cli_config(tmp_path)
        done = _cli("cloudkeeper", config, "sync", "--drain")

        assert done.returncode == 1
        job, verdict, _ = _summary(done)
        assert (job, verdict) == ("cloudkeeper-sync", "partial")
        assert f"image {site.ident('twice')}: not adopted, 2 old images" in done.stdout
        assert {i: site.glance_view(i) for i in (first, second)} == before  # untouched
        assert set(site.ours()) == {site.ident("single")}  # and no third copy uploaded
        status = _cli("cloudkeeper", config, "status")
        assert f"image {site.ident('twice')}: error: image {site.ident('twice')}: not adopted" in (
            status.stdout
        )
        assert (
            f"{first} (atrope)" in status.stdout and f"{second} (cloudkeeper-os)" in status.stdout
        )
    finally:
        site.remove_all()


def test_a_dry_run_shows_every_adoption_and_changes_nothing(demo_cloud, signing, tmp_path):
    site = Migration(demo_cloud, signing, tmp_path, "auto")
    try:
        same = qcow2(tmp_path, 4, f"dry-same-{site.suffix}")
        old, new = (qcow2(tmp_path, 4, f"dry-{v}-{site.suffix}") for v in ("old", "new"))
        kept = site.serve_image(site.ident("kept"), same)
        changed = site.serve_image(site.ident("changed"), new)
        stale = json.loads(json.dumps(changed))
        stale["hv:image"]["sl:checksum:sha512"] = hashlib.sha512(old).hexdigest()
        kept_id = site.seed_atrope(kept, same)
        changed_id = site.seed_cloudkeeper_os(stale, old)
        site.publish_list([kept, changed])
        before = {i: site.glance_view(i) for i in (kept_id, changed_id)}

        dry = _cli("cloudkeeper", site.cli_config(tmp_path), "sync", "--dry-run")

        assert dry.returncode == 0, dry.stderr
        lines = dry.stdout.splitlines()
        assert (
            f"  would adopt {site.ident('kept')} (Image {site.ident('kept')}): placed by atrope "
            f"as {kept_id}; same content: tagged and described as ours, same id, nothing uploaded"
        ) in lines
        assert (
            f"  would adopt {site.ident('changed')} (Image {site.ident('changed')}): placed by "
            f"cloudkeeper-os as {changed_id}; other content: taken over as the previous version, "
            "replaced and retired"
        ) in lines
        assert any(line.startswith(f"  would replace {site.ident('changed')}") for line in lines)
        assert any(line.startswith(f"  would retire {site.ident('changed')}") for line in lines)
        counts = _summary(dry)[2]
        assert (counts["adopt"], counts["replace"], counts["update"]) == ("2", "1", "1")
        assert {i: site.glance_view(i) for i in (kept_id, changed_id)} == before
        assert site.ours() == {} and not list(site.config.cache_dir.rglob("*.qcow2"))
    finally:
        site.remove_all()


def test_old_images_of_unsubscribed_lists_are_listed_and_retired_only_when_asked(
    demo_cloud, signing, tmp_path
):
    site = Migration(demo_cloud, signing, tmp_path, "auto")
    try:
        data = qcow2(tmp_path, 4, f"orphan-{site.suffix}")
        current = site.serve_image(site.ident("current"), data)
        site.publish_list([current])
        gone_atrope = site.seed_atrope(
            site.serve_image(site.ident("a-gone"), data), data, list_name=f"gone-{site.suffix}"
        )
        gone_ckos = site.seed_cloudkeeper_os(
            site.serve_image(site.ident("c-gone"), data), data, list_id=str(uuid.uuid4())
        )
        still = site.seed_atrope(current, data)  # the subscribed list's: adopted, not listed
        config = site.cli_config(tmp_path)
        assert _cli("cloudkeeper", config, "sync", "--drain").returncode == 0

        dry = _cli("cloudkeeper", config, "cleanup", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        left = "for a list no longer subscribed; kept (cleanup --retire-old retires it)"
        a_gone, c_gone = site.ident("a-gone"), site.ident("c-gone")
        assert f"  leave {a_gone} (Image {a_gone}): placed by atrope {left}" in dry.stdout
        assert f"  leave {c_gone} (Image {c_gone}): placed by cloudkeeper-os {left}" in dry.stdout
        assert site.ident("current") not in dry.stdout
        plain = _cli("cloudkeeper", config, "cleanup")
        assert plain.returncode == 0 and "leave" in plain.stdout
        _cli("cloudkeeper-os", config, "drain")
        assert site.glance_view(gone_atrope) and site.glance_view(gone_ckos)

        dry_retire = _cli("cloudkeeper", config, "cleanup", "--retire-old", "--dry-run")
        assert f"  would retire {site.ident('a-gone')}" in dry_retire.stdout
        assert site.glance_view(gone_atrope) and site.glance_view(gone_ckos)
        retired = _cli("cloudkeeper", config, "cleanup", "--retire-old")
        assert retired.returncode == 0, retired.stderr
        drained = _cli("cloudkeeper-os", config, "drain")
        assert drained.returncode == 0, drained.stdout
        assert site.glance_view(gone_atrope) is None and site.glance_view(gone_ckos) is None
        assert site.glance_view(still)["id"] == still  # the adopted one stays
    finally:
        site.remove_all()


@pytest.fixture
def gocdb(tmp_path, demo_cloud):
    """The GOCDB stand-in, as the proxy cloud-info-provider reaches goc.egi.eu through."""
    ca = TestCA(tmp_path / "goc-ca", dn="/CN=cloudkeeper adopt test CA")
    goc = ca.issue("goc", "/CN=goc.egi.eu", san="DNS:goc.egi.eu")
    services = [{"primary_key": "77G0", "site": "ADOPT-SITE", "type": "org.openstack.nova",
                 "url": demo_cloud.auth_url}]  # fmt: skip
    (tmp_path / "services.json").write_text(json.dumps(services))
    port = free_port(range(47300, 47400))
    proc = subprocess.Popen(
        [sys.executable, str(GOCDB_STANDIN), "--services", str(tmp_path / "services.json"),
         "--cert", str(goc.cert), "--key", str(goc.key), "--proxy-port", str(port)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert "listening" in proc.stdout.readline()
    yield port, ca
    proc.terminate()
    proc.wait(timeout=10)


def test_cloud_info_provider_publishes_each_adopted_image_once(
    demo_cloud, signing, tmp_path, gocdb
):
    site = Migration(demo_cloud, signing, tmp_path, "auto")
    try:
        data = qcow2(tmp_path, 4, f"cip-{site.suffix}")
        from_atrope = site.serve_image(site.ident("cip-a"), data)
        from_ckos = site.serve_image(site.ident("cip-c"), data)
        site.seed_atrope(from_atrope, data)
        # Both visible to the VO before adoption: a duplicate would be published twice.
        site.seed_cloudkeeper_os(from_ckos, data, public=True)
        site.publish_list([from_atrope, from_ckos])
        report, drained = site.sync()
        assert not report.failed and drained["failed"] == 0 and drained["uploaded_bytes"] == 0

        site_yaml = tmp_path / "site.yaml"
        vo_project = site.vo.current_project_id
        vos = [{"name": VO, "auth": {"project_id": vo_project}}]
        site_yaml.write_text(
            json.dumps({"gocdb": "ADOPT-SITE", "endpoint": demo_cloud.auth_url, "vos": vos})
        )
        port, ca = gocdb
        env = {**os.environ, "OS_CLIENT_CONFIG_FILE": str(demo_cloud.clouds_yaml),
               "HTTPS_PROXY": f"http://127.0.0.1:{port}", "NO_PROXY": "localhost,127.0.0.1",
               "REQUESTS_CA_BUNDLE": str(ca.cert)}  # fmt: skip
        provider = Path(sys.executable).parent / "cloud-info-provider-service"
        done = subprocess.run(
            [str(provider), "--middleware", "openstack", "--format", "glue21json",
             "--os-cloud", "fedcloud-demo", str(site_yaml)],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        published = json.loads(done.stdout)["CloudComputingImage"]
        for entry in (from_atrope, from_ckos):
            mpuri = entry["hv:image"]["ad:mpuri"]
            mine = [i for i in published if i.get("MarketplaceURL") == mpuri]
            assert len(mine) == 1, (mpuri, mine)
    finally:
        site.remove_all()


def test_the_adopt_setting_is_required_for_the_old_images_to_be_touched(
    demo_cloud, signing, tmp_path
):
    site = Migration(demo_cloud, signing, tmp_path, "atrope")
    try:
        data = qcow2(tmp_path, 4, f"noadopt-{site.suffix}")
        entry = site.serve_image(site.ident("plain"), data)
        old_id = site.seed_atrope(entry, data)
        site.publish_list([entry])
        source = site.config.lists[0].model_copy(update={"adopt": None})
        site.config = Config(**(dict(site.config) | {"lists": (source,)}))
        report, _ = site.sync()
        assert [a.verb for o in report.lists for a in o.actions] == ["add"]
        assert site.ours()[site.ident("plain")]["id"] != old_id
        assert moved_tags(site, old_id) == ["atrope-catchall"]
    finally:
        site.remove_all()


def moved_tags(site: Migration, image_id: str) -> list[str]:
    view = site.glance_view(image_id)
    assert view is not None
    return sorted(view["tags"])


def test_an_old_image_the_vos_project_owns_is_held_until_it_is_given_to_ours(
    demo_cloud, signing, tmp_path
):
    """cloudkeeper-os 0.9 with mapping.json uploaded into each VO's project."""
    site = Migration(demo_cloud, signing, tmp_path, "cloudkeeper-os")
    try:
        data = qcow2(tmp_path, 4, f"vo-owned-{site.suffix}")
        entry = site.serve_image(site.ident("vo-owned"), data)
        old_id = site.seed_cloudkeeper_os(entry, data, conn=site.vo)
        site.publish_list([entry])

        report, drained = site.sync()

        assert report.failed and site.ours() == {} and drained["uploaded_bytes"] == 0
        (problem,) = [e for o in report.lists for e in o.errors]
        assert f"old image {old_id} (cloudkeeper-os) is owned by project vo-demo" in problem
        # The fix the reason names: the admin gives it to the appliance's project.
        site.admin.image.update_image(old_id, owner=site.old.current_project_id)
        report, drained = site.sync()
        assert not report.failed and drained["uploaded_bytes"] == 0
        assert site.ours()[site.ident("vo-owned")]["id"] == old_id
    finally:
        site.remove_all()
