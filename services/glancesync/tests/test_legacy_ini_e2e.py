"""An existing GlanceSync config file, rendered by the appliance, syncing
the real Glances: credentials as user,base64(password),url,tenant, a v2.0
Keystone URL, and a metadata_condition read as a rule."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import pytest

from fedcloud_appliance.config import ApplianceConfig
from fedcloud_appliance.render.regions import glancesync
from fedcloud_glancesync.regions import TargetRegion
from fedcloud_glancesync.sync import Syncer

from .conftest import Glances, images, put_image, run_cli

pytestmark = pytest.mark.e2e


def test_a_glancesync_file_syncs_the_demo_regions(clean: Glances, tmp_path: Path) -> None:
    g = clean
    secret = base64.b64encode(b"fedcloudpass").decode()
    keystone = g.demo.auth_url.removesuffix("/v3")
    conf = tmp_path / "glancesync.conf"
    conf.write_text(
        f"""
[main]
master_region = RegionOne
max_children = 2
images_dir = /var/lib/glance/images

[DEFAULT]
metadata_set = gs_flavour
metadata_condition = image.is_public and image.user_properties.get('gs_flavour', None) == 'base'

[master]
credential = fedcloud,{secret},{keystone}/v2.0,fedcloud-ops

[cloudb]
credential = fedcloud,{secret},{g.cloudb_auth_url.removesuffix("/v3")},fedcloud-ops
"""
    )
    put_image(g.master, "gs-base", b"b" * 64, gs_flavour="base")
    put_image(g.master, "gs-other", b"o" * 64, gs_flavour="other")
    config = ApplianceConfig.model_validate(
        {
            "site": {"name": "INI-SITE", "hostname": "cloud.test"},
            "images": {"enabled": False},
            "bdii": {"enabled": False},
            "regions": {"enabled": True, "glancesync_conf": str(conf)},
        }
    )
    staged = tmp_path / "secrets"
    staged.mkdir()

    def stage(path: Path | None) -> str | None:  # the render step's, on the host
        assert path is not None
        return str(shutil.copy(path, staged / path.name))

    settings = glancesync(config, stage).model_copy(update={"state_dir": tmp_path / "state"})
    assert settings.parallelism == 2
    assert "fedcloudpass" not in settings.model_dump_json()

    shown = run_cli(settings, tmp_path, "show-regions")
    assert shown.stdout.splitlines() == ["RegionTwo", "cloudb:RegionOne"], shown.stderr
    record = Syncer(settings).run(
        [TargetRegion("master", "RegionTwo"), TargetRegion("cloudb", "RegionOne")], parallel=True
    )
    assert [r.outcome for r in record.regions] == ["ok", "ok"]
    for conn in (g.two, g.cloudb):
        assert [(i.name, i.properties.get("gs_flavour")) for i in images(conn)] == [
            ("gs-base", "base")
        ]
