"""GlanceSync's algorithm against three real Glances in two Keystones.

Every test asserts what the target Glances hold afterwards, read back
through their own API, not what the sync says it did.
"""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest

from fedcloud_common.regionstatus import RunRecord
from fedcloud_glancesync.regions import TargetRegion
from fedcloud_glancesync.sync import Syncer

from .conftest import MARK, Glances, get_image, images, named, put_image, run_cli, sha512

pytestmark = pytest.mark.e2e

TWO = TargetRegion("master", "RegionTwo")
CLOUDB = TargetRegion("cloudb", "RegionOne")
BOTH = [TWO, CLOUDB]


def sync(glances: Glances, state: Path, regions=BOTH, **options) -> RunRecord:  # type: ignore[no-untyped-def]
    policy = options.pop("policy", {})
    return Syncer(glances.settings(state, **policy)).run(regions, **options)


def outcome(record: RunRecord, label: str) -> tuple[str, str]:
    region = next(r for r in record.regions if r.region == label)
    return region.outcome, region.reason


def test_first_sync_copies_selected_images_with_their_data(clean: Glances, tmp_path: Path) -> None:
    g = clean
    small, big = b"a" * 3000, b"b" * 70000
    one = put_image(g.master, "gs-one", small, **{MARK: "yes", "os_distro": "debian"})
    two = put_image(g.master, "gs-two", big, **{MARK: "yes"})
    put_image(g.master, "gs-private", b"p" * 10, visibility="private", **{MARK: "yes"})
    put_image(g.master, "gs-unmarked", b"u" * 10)

    record = sync(g, tmp_path, parallel=True)

    assert [outcome(record, r.label) for r in BOTH] == [("ok", ""), ("ok", "")]
    for conn in (g.two, g.cloudb):
        copies = images(conn)
        assert [i.name for i in copies] == ["gs-one", "gs-two"]
        assert [i.sha512 for i in copies] == [sha512(small), sha512(big)]
        assert copies[0].properties == one.properties
        assert all(i.is_public and i.status == "active" for i in copies)
    # Read once from the master however many regions took it.
    assert record.master_bytes_read == one.size + two.size
    assert record.master_read_ratio == 1.0
    assert {r.region: r.after for r in record.regions} == {
        "RegionTwo": {"ok": 2},
        "cloudb:RegionOne": {"ok": 2},
    }
    logs = sorted(p.name for p in Path(record.log_dir).iterdir())
    assert logs == ["RegionTwo.log", "cloudb_RegionOne.log"]


def test_status_csv_before_and_after_and_dry_run_changes_nothing(
    clean: Glances, tmp_path: Path
) -> None:
    g = clean
    put_image(g.master, "gs-a", b"1" * 100, **{MARK: "x"})
    put_image(g.master, "gs-b", b"2" * 100, **{MARK: "x"})
    settings = g.settings(tmp_path)

    before = run_cli(settings, tmp_path, "status")
    assert before.returncode == 0, before.stderr
    assert before.stdout.splitlines() == [
        "pending_upload,RegionTwo,gs-a",
        "pending_upload,RegionTwo,gs-b",
        "pending_upload,cloudb:RegionOne,gs-a",
        "pending_upload,cloudb:RegionOne,gs-b",
    ]
    dry = run_cli(settings, tmp_path, "sync", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry_run=yes" in dry.stdout.splitlines()[-1]
    assert images(g.two) == [] and images(g.cloudb) == []
    assert not (tmp_path / "status.json").exists()

    done = run_cli(settings, tmp_path, "sync", "--parallel", "RegionTwo", "cloudb:")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("region-sync ok regions=2 failed=0 uploaded=4")
    after = run_cli(settings, tmp_path, "status")
    assert after.stdout.splitlines() == [
        "ok,RegionTwo,gs-a",
        "ok,RegionTwo,gs-b",
        "ok,cloudb:RegionOne,gs-a",
        "ok,cloudb:RegionOne,gs-b",
    ]
    status = RunRecord.model_validate_json((tmp_path / "status.json").read_text())
    assert [r.outcome for r in status.regions] == ["ok", "ok"]


def test_metadata_only_change_updates_metadata_set_and_visibility(
    clean: Glances, tmp_path: Path
) -> None:
    g = clean
    policy = {"selection": {"metadata_set": [MARK, "gs_version"], "forcesyncs": []}}
    master = put_image(g.master, "gs-meta", b"m" * 500, **{MARK: "y", "gs_version": "1"})
    sync(g, tmp_path, [TWO], policy=policy)
    copy = named(g.two, "gs-meta")[0]
    g.two.image.patch(
        f"/images/{copy.id}",
        json=[{"op": "add", "path": "/site_local", "value": "kept"}],
        headers={"Content-Type": "application/openstack-images-v2.1-json-patch"},
    )
    g.master.image.patch(
        f"/images/{master.id}",
        json=[
            {"op": "replace", "path": "/gs_version", "value": "2"},
            {"op": "add", "path": "/not_in_set", "value": "no"},
        ],
        headers={"Content-Type": "application/openstack-images-v2.1-json-patch"},
    )
    settings = g.settings(tmp_path, **policy)
    assert run_cli(settings, tmp_path, "status", "RegionTwo").stdout == (
        "pending_metadata,RegionTwo,gs-meta\n"
    )

    record = sync(g, tmp_path, [TWO], policy=policy)

    assert record.regions[0].done == {"metadata": 1}
    after = get_image(g.two, copy.id)  # the same image: not uploaded again
    assert after.properties["gs_version"] == "2"
    assert after.properties["site_local"] == "kept"
    assert "not_in_set" not in after.properties
    assert len(named(g.two, "gs-meta")) == 1


def test_visibility_follows_the_master(clean: Glances, tmp_path: Path) -> None:
    g = clean
    master = put_image(g.master, "gs-vis", b"v" * 64, visibility="private", **{MARK: "1"})
    policy = {"selection": {"metadata_set": [MARK], "forcesyncs": [master.id]}}
    sync(g, tmp_path, [TWO], policy=policy)
    assert named(g.two, "gs-vis")[0].visibility == "private"
    g.master.image.patch(
        f"/images/{master.id}",
        json=[{"op": "replace", "path": "/visibility", "value": "public"}],
        headers={"Content-Type": "application/openstack-images-v2.1-json-patch"},
    )
    record = sync(g, tmp_path, [TWO], policy=policy)
    assert record.regions[0].done == {"metadata": 1}
    assert named(g.two, "gs-vis")[0].visibility == "public"


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("dontupdate", "ok_stalled_checksum"),
        ("rename", "pending_rename"),
        ("replace", "pending_replace"),
        ("replace-any", "pending_replace"),
        ("rename-any", "pending_rename"),
        ("none", "error_checksum"),
    ],
)
def test_conflict_rules(clean: Glances, tmp_path: Path, rule: str, expected: str) -> None:
    g = clean
    data, local = b"M" * 1000, b"L" * 900
    put_image(g.master, "gs-conflict", data, **{MARK: "1"})
    old = put_image(g.two, "gs-conflict", local)
    conflicts: dict[str, list[str]] = {}
    if rule in ("dontupdate", "rename", "replace"):
        # GlanceSync's lists name the target's MD5 checksum; a decoy entry too.
        conflicts[rule] = ["0" * 32, str(old.checksum)]
    elif rule.endswith("-any"):
        conflicts[rule.removesuffix("-any")] = ["any"]
    if rule == "rename-any":
        conflicts["dontupdate"] = ["f" * 128]  # does not match: still renamed
    policy = {"conflicts": conflicts}
    settings = g.settings(tmp_path, **policy)
    assert run_cli(settings, tmp_path, "status", "RegionTwo").stdout == (
        f"{expected},RegionTwo,gs-conflict\n"
    )

    record = sync(g, tmp_path, [TWO], policy=policy)

    now = images(g.two)
    if expected in ("ok_stalled_checksum", "error_checksum"):
        assert [(i.id, i.name, i.sha512) for i in now] == [(old.id, old.name, sha512(local))]
        state = "ok" if expected == "ok_stalled_checksum" else "partial"
        assert record.regions[0].outcome == state
        if state == "partial":
            assert "error_checksum" in record.regions[0].reason
        return
    assert record.regions[0].outcome == "ok"
    fresh = [i for i in now if i.name == "gs-conflict"]
    assert [i.sha512 for i in fresh] == [sha512(data)]
    assert fresh[0].id != old.id
    if expected == "pending_rename":
        kept = get_image(g.two, old.id)
        assert (kept.name, kept.visibility, kept.sha512) == (
            "gs-conflict.old",
            "private",
            sha512(local),
        )
    else:
        assert old.id not in {i.id for i in now}


def test_duplicate_names(clean: Glances, tmp_path: Path) -> None:
    g = clean
    put_image(g.master, "gs-twin", b"1" * 10, **{MARK: "1"})
    put_image(g.master, "gs-twin", b"2" * 10, **{MARK: "1"})
    single = b"s" * 20
    put_image(g.master, "gs-single", single, **{MARK: "1"})
    # Two of the same name in the target: the one with the master's content counts.
    put_image(g.two, "gs-single", b"x" * 20)
    same = put_image(g.two, "gs-single", single)

    record = sync(g, tmp_path, [TWO])

    assert [i.name for i in images(g.two)] == ["gs-single", "gs-single"]
    assert record.regions[0].after == {"ok": 1}
    log = Path(record.regions[0].log).read_text()
    assert "master has 2 images named 'gs-twin'" in log
    assert "RegionTwo has 2 images named 'gs-single'" in log
    assert same.id in {i.id for i in images(g.two)}


def test_obsolete_rename_visibility_and_syncprops(clean: Glances, tmp_path: Path) -> None:
    g = clean
    data = b"o" * 300
    policy = {"obsolete_syncprops": ["gs_note"]}
    master = put_image(g.master, "gs-old", data, **{MARK: "1"})
    sync(g, tmp_path, [TWO], policy=policy)
    copy = named(g.two, "gs-old")[0]
    # Another obsolete image that was never synced: it is not uploaded now.
    put_image(g.master, "gs-never_obsolete", b"n" * 10, **{MARK: "1"})
    g.master.image.patch(
        f"/images/{master.id}",
        json=[
            {"op": "replace", "path": "/name", "value": "gs-old_obsolete"},
            {"op": "replace", "path": "/visibility", "value": "private"},
            {"op": "add", "path": "/gs_note", "value": "retired"},
        ],
        headers={"Content-Type": "application/openstack-images-v2.1-json-patch"},
    )

    record = sync(g, tmp_path, [TWO, CLOUDB], policy=policy)

    assert record.regions[0].done == {"obsolete": 1}
    after = get_image(g.two, copy.id)
    assert (after.name, after.visibility, after.properties["gs_note"]) == (
        "gs-old_obsolete",
        "private",
        "retired",
    )
    assert [i.id for i in images(g.two)] == [copy.id]
    assert images(g.cloudb) == []  # obsolete images are never uploaded


def test_obsolete_not_propagated_when_disabled_or_other_content(
    clean: Glances, tmp_path: Path
) -> None:
    g = clean
    put_image(g.master, "gs-x_obsolete", b"1" * 10, visibility="private", **{MARK: "1"})
    other = put_image(g.two, "gs-x", b"2" * 10)
    put_image(g.master, "gs-y_obsolete", b"3" * 10, visibility="private", **{MARK: "1"})
    same = put_image(g.two, "gs-y", b"3" * 10)
    sync(g, tmp_path, [TWO], policy={"support_obsolete_images": False})
    assert get_image(g.two, same.id).name == "gs-y"
    sync(g, tmp_path, [TWO])
    assert get_image(g.two, other.id).name == "gs-x"  # other content: left alone
    assert get_image(g.two, same.id).name == "gs-y_obsolete"


def test_forcesyncs_take_private_images(clean: Glances, tmp_path: Path) -> None:
    g = clean
    forced = put_image(g.master, "gs-forced", b"f" * 10, visibility="private")
    put_image(g.master, "gs-private", b"p" * 10, visibility="private", **{MARK: "1"})
    policy = {"selection": {"select": "forcesyncs", "forcesyncs": [forced.id]}}
    sync(g, tmp_path, policy=policy)
    for conn in (g.two, g.cloudb):
        assert [(i.name, i.visibility) for i in images(conn)] == [("gs-forced", "private")]


def test_a_master_image_with_bad_data_is_never_uploaded(clean: Glances, tmp_path: Path) -> None:
    g = clean
    good = put_image(g.master, "gs-good", b"g" * 100, **{MARK: "1"})
    bad = put_image(g.master, "gs-bad", b"b" * 50, **{MARK: "1"})
    container = f"{g.demo.project}-democloud-1"
    path = f"/var/lib/democloud/glance/images/{bad.id}"
    subprocess.run(
        ["docker", "exec", container, "python3", "-c",
         f"f = open({path!r}, 'r+b'); f.write(b'X'); f.close()"],
        check=True,
    )  # fmt: skip

    record = sync(g, tmp_path, parallel=True)

    for conn in (g.two, g.cloudb):
        assert [i.name for i in images(conn)] == ["gs-good"]
        assert images(conn)[0].sha512 == good.sha512
    for region in record.regions:
        assert region.outcome == "partial"
        assert "does not match its SHA-512" in region.reason
    assert record.master_bytes_read == bad.size + good.size  # the bad one read once too


def test_a_region_that_is_down_stops_only_itself_and_catches_up(
    clean: Glances, tmp_path: Path
) -> None:
    g = clean
    put_image(g.master, "gs-up", b"u" * 100, **{MARK: "1"})
    container = f"{g.demo.project}-democloud-b-1"
    subprocess.run(["docker", "pause", container], check=True)
    try:
        record = sync(g, tmp_path, parallel=True)
    finally:
        subprocess.run(["docker", "unpause", container], check=True)
    assert outcome(record, "RegionTwo") == ("ok", "")
    state, reason = outcome(record, "cloudb:RegionOne")
    assert state == "failed" and reason
    assert [i.name for i in images(g.two)] == ["gs-up"]

    again = sync(g, tmp_path, parallel=True)
    assert outcome(again, "cloudb:RegionOne") == ("ok", "")
    assert [i.name for i in images(g.cloudb)] == ["gs-up"]
    assert again.regions[0].done == {}  # RegionTwo had nothing left to do


def test_show_regions_and_backups(clean: Glances, tmp_path: Path) -> None:
    g = clean
    image = put_image(g.master, "gs-backup", b"k" * 10, **{MARK: "1", "gs_x": "y"})
    settings = g.settings(tmp_path)
    shown = run_cli(settings, tmp_path, "show-regions")
    assert shown.stdout.splitlines() == ["RegionTwo", "cloudb:RegionOne"]

    made = run_cli(settings, tmp_path, "make-backups", "--dir", str(tmp_path / "b"))
    assert made.returncode == 0, made.stderr
    files = sorted(p.name for p in (tmp_path / "b").iterdir())
    assert files == ["backup_RegionOne.csv", "backup_RegionTwo.csv", "backup_cloudb_RegionOne.csv"]
    with (tmp_path / "b" / "backup_RegionOne.csv").open() as backup:
        rows = {row["name"]: row for row in csv.DictReader(backup)}
    row = rows["gs-backup"]
    assert (row["region"], row["id"], row["status"], row["size"]) == (
        "RegionOne",
        image.id,
        "active",
        "10",
    )
    assert row["checksum"] == image.checksum and row["is_public"] == "True"
    assert json.loads(row["user_properties"]) == {MARK: "1", "gs_x": "y"}
