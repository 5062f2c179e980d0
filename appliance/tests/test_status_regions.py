"""region-sync's per-region outcome in `appliance status`: text, JSON, the page."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from fedcloud_appliance import status
from fedcloud_appliance.page import as_html
from fedcloud_common import settings
from fedcloud_common.regionstatus import STATUS_FILE, RegionRecord, RunRecord
from fedcloud_common.settings.glancesync import GlanceSyncSettings

from .test_status import supervisor

NOW = datetime.datetime(2026, 5, 1, 10, 0, tzinfo=datetime.UTC)


def record(state_dir: Path) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    run = RunRecord(
        started=NOW,
        finished=NOW,
        regions=[
            RegionRecord(region="RegionTwo", outcome="ok", after={"ok": 3}),
            RegionRecord(
                region="cloudb:RegionOne",
                outcome="failed",
                reason="Keystone of cloudb did not answer within 10 s",
                before={"pending_upload": 3},
            ),
        ],
        master_bytes_read=300,
        synced_image_bytes=300,
    )
    (state_dir / STATUS_FILE).write_text(run.model_dump_json())


def test_each_region_outcome_is_shown_and_a_failed_one_needs_attention(tmp_path: Path) -> None:
    record(tmp_path / "regions")
    report = status.collect(
        supervisor(tmp_path),
        None,
        appliance=status.Appliance(region_state_dir=tmp_path / "regions"),
    )
    regions = report["regions"]
    assert regions["master_read_ratio"] == 1.0
    assert [(r["region"], r["outcome"], r["images"]) for r in regions["regions"]] == [
        ("RegionTwo", "ok", {"ok": 3}),
        ("cloudb:RegionOne", "failed", {"pending_upload": 3}),
    ]
    assert (
        "region cloudb:RegionOne failed: Keystone of cloudb did not answer within 10 s"
        in report["attention"]
    )
    text = status.as_text(report)
    assert "RegionTwo                ok       ok=3" in text
    assert "reason: Keystone of cloudb did not answer within 10 s" in text
    assert json.loads(status.as_json(report))["regions"] == regions
    page = as_html(report)
    assert '<tr class="region failed"><td class="mono">cloudb:RegionOne</td>' in page
    assert "pending_upload=3" in page


def test_before_the_first_run_regions_were_never_synced(tmp_path: Path) -> None:
    report = status.collect(
        supervisor(tmp_path), None, appliance=status.Appliance(region_state_dir=tmp_path / "x")
    )
    assert report["regions"]["regions"] == []
    assert "regions: never synced" in status.as_text(report)
    assert "never synced" in as_html(report)
    # regions not enabled: nothing said.
    assert status.collect(supervisor(tmp_path / "2"), None)["regions"] is None


def test_appliance_status_reads_where_glancesync_was_rendered_to_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from fedcloud_appliance import cli

    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "password").write_text("pw")
    (tmp_path / "secrets" / "password").chmod(0o600)
    config = tmp_path / "appliance.yaml"
    config.write_text(
        "site: {name: STATUS-SITE, hostname: cloud.status.test}\n"
        "openstack: {auth_url: 'https://k.test/v3', username: u, "
        f"password_file: {tmp_path}/secrets/password, project_name: p}}\n"
        f"supervisor: {{state_dir: {tmp_path}/state}}\n"
        "images: {enabled: false}\n"
        "regions: {enabled: true, master: {region: R1}, targets: {master: {}}}\n"
    )
    rendered = GlanceSyncSettings.model_validate(
        {
            "master_region": "R1",
            "master": {"cloud": "c"},
            "targets": {"master": {"openstack": {"cloud": "c"}}},
            "state_dir": str(tmp_path / "elsewhere"),
        }
    )
    settings.write(rendered, tmp_path / "rendered" / "glancesync.json")
    record(tmp_path / "elsewhere")
    monkeypatch.setenv("FEDCLOUD_RENDER_DIR", str(tmp_path / "rendered"))
    monkeypatch.setattr(cli, "_docker", lambda: None)
    assert cli.main(["--config", str(config), "status", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["outcome"] for r in report["regions"]["regions"]] == ["ok", "failed"]
