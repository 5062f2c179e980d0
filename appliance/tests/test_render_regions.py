"""appliance.yaml's ``regions`` section: each key, rendered into the
settings fedcloud-glancesync loads, and a GlanceSync INI file read as one.

What the settings then do against real Glances is tested in
services/glancesync/tests (three Glances in two Keystones of the demo cloud).
"""

from __future__ import annotations

import base64
import textwrap
from pathlib import Path

import pytest

from fedcloud_appliance import loader, render
from fedcloud_appliance.config import glancesync_ini
from fedcloud_appliance.jobs import job_specs
from fedcloud_common import settings
from fedcloud_common.errors import ConfigError
from fedcloud_common.services import RENDERED_DIR
from fedcloud_common.settings.glancesync import Condition, GlanceSyncSettings
from tests.support.applianceconfig import MINIMAL, SECRET, write_password

CLOUDB = """
      openstack:
        auth_url: https://keystone-b.test:5000/v3
        username: sync
        password_file: PASSWORD
        project_name: images
"""


def _load(root: Path, regions: str):  # type: ignore[no-untyped-def]
    password = write_password(root)
    text = MINIMAL + textwrap.dedent(regions)
    (root / "appliance.yaml").write_text(text.replace("PASSWORD", str(password)))
    return loader.load(root / "appliance.yaml")


def _render(root: Path, regions: str) -> GlanceSyncSettings:
    config = _load(root, regions)
    render.render_all(config, root / "rendered")
    return settings.load(GlanceSyncSettings, root / "rendered" / "glancesync.json")


def _secret(root: Path, rendered_path: Path) -> str:
    local = root / "rendered" / rendered_path.relative_to(RENDERED_DIR)
    return local.read_text().strip()


def test_targets_fall_back_on_the_defaults_key_by_key(tmp_path: Path) -> None:
    rendered = _render(
        tmp_path,
        """
regions:
  enabled: true
  master: {region: RegionOne}
  parallelism: 5
  cache_gb: 1.5
  defaults:
    selection: {metadata_set: [nid, type]}
    conflicts: {replace: [any]}
    obsolete_syncprops: [sdc_aware]
    list_images_timeout_s: 12
  targets:
    master: {regions: [RegionTwo]}
    other:
      ignore_regions: [Old]
      selection: {forcesyncs: [6e240dd4-e304-4599-b7d8-e38e13cef058]}
      only_tenant_images: false
      support_obsolete_images: false
"""
        + CLOUDB,
    )
    assert rendered.master_region == "RegionOne"
    assert (rendered.parallelism, rendered.cache_bytes) == (5, int(1.5 * 1024**3))
    master, other = rendered.targets["master"], rendered.targets["other"]
    # The master target uses the master's credentials (top-level openstack).
    assert master.openstack == rendered.master
    assert _secret(tmp_path, rendered.master.password_file) == SECRET  # type: ignore[arg-type]
    assert master.regions == ["RegionTwo"] and master.policy.conflicts.replace == ["any"]
    assert master.policy.selection.metadata_set == ["nid", "type"]
    assert master.policy.list_images_timeout_s == 12
    # The other target: its own Keystone; its keys over the defaults', one by one.
    assert str(other.openstack.auth_url) == "https://keystone-b.test:5000/v3"
    assert other.regions is None and other.ignore_regions == ["Old"]
    assert other.policy.selection.metadata_set == ["nid", "type"]
    assert other.policy.selection.forcesyncs == ["6e240dd4-e304-4599-b7d8-e38e13cef058"]
    assert other.policy.conflicts.replace == ["any"]
    assert other.policy.obsolete_syncprops == ["sdc_aware"]
    assert (other.policy.only_tenant_images, master.policy.only_tenant_images) == (False, True)
    assert other.policy.support_obsolete_images is False


def test_the_job_follows_enabled_and_schedule(tmp_path: Path) -> None:
    off = _load(tmp_path, "")
    assert "region-sync" not in {spec.name for spec in job_specs(off, "1.0")}
    on = _load(
        tmp_path,
        """
regions:
  enabled: true
  schedule: "15 3 * * *"
  master: {region: RegionOne}
  targets: {master: {}}
""",
    )
    spec = next(spec for spec in job_specs(on, "1.0") if spec.name == "region-sync")
    assert spec.schedule == "15 3 * * *"
    assert spec.image == "fedcloud/glancesync:1.0"
    assert spec.command[-2:] == ("sync", "--parallel")


@pytest.mark.parametrize(
    ("regions", "problem"),
    [
        ("regions: {enabled: true, targets: {master: {}}}", "enabled needs master"),
        ("regions: {enabled: true, master: {region: R}}", "at least one target"),
        (
            "regions: {enabled: true, master: {region: R}, targets: {'a:b': {}}}",
            "without ':'",
        ),
        (
            "regions: {enabled: true, master: {region: R}, targets: {m: {}}, "
            "defaults: {conflicts: {rename: [nope]}}}",
            "neither 'any' nor a checksum",
        ),
    ],
)
def test_invalid_sections_are_refused_with_the_fix(
    tmp_path: Path, regions: str, problem: str
) -> None:
    with pytest.raises(loader.ConfigError) as raised:
        _load(tmp_path, regions)
    assert problem in str(raised.value)


INI = """
[main]
master_region = Spain2
max_children = 3
images_dir = /var/lib/glance/images

[DEFAULT]
metadata_set = nid , type, sdc_aware
replace = 9046fd22131a96502cb0d85b4a406a5a
rename = any
only_tenant_images = True
obsolete_syncprops = sdc_aware
list_images_timeout = 20
metadata_condition = image.is_public and
    ('nid' in image.user_properties or 'type' in image.user_properties)

[master]
credential = admin,{b64},http://keystone:4730/v2.0,tenant1
ignore_regions = Spain1

[experimental]
user = user2
password = other-password
keystone_url = http://server2:4730/v3
tenant = tenant2
forcesyncs = 6e240dd4-e304-4599-b7d8-e38e13cef058
metadata_condition = image.is_public and image.user_properties.get('type', None) == 'baseimages'
"""


def test_a_glancesync_file_is_read_as_the_section(tmp_path: Path) -> None:
    conf = tmp_path / "glancesync.conf"
    conf.write_text(INI.format(b64=base64.b64encode(SECRET.encode()).decode()))
    rendered = _render(tmp_path, f"regions: {{enabled: true, glancesync_conf: {conf}}}\n")
    assert (rendered.master_region, rendered.parallelism) == ("Spain2", 3)
    master, experimental = rendered.targets["master"], rendered.targets["experimental"]
    assert rendered.master == master.openstack
    assert str(master.openstack.auth_url) == "http://keystone:4730/v3"  # v2.0 is gone
    assert (master.openstack.username, master.openstack.project_name) == ("admin", "tenant1")
    assert _secret(tmp_path, master.openstack.password_file) == SECRET  # type: ignore[arg-type]
    assert _secret(tmp_path, experimental.openstack.password_file) == "other-password"  # type: ignore[arg-type]
    assert SECRET not in (tmp_path / "rendered" / "glancesync.json").read_text()
    assert master.ignore_regions == ["Spain1"]
    policy = master.policy
    assert policy.selection.metadata_set == ["nid", "type", "sdc_aware"]
    assert policy.selection.condition == Condition(public=True, any_property=["nid", "type"])
    assert policy.conflicts.replace == ["9046fd22131a96502cb0d85b4a406a5a"]
    assert policy.conflicts.rename == ["any"]
    assert (policy.obsolete_syncprops, policy.list_images_timeout_s) == (["sdc_aware"], 20)
    selection = experimental.policy.selection
    assert selection.condition == Condition(
        public=True, any_property=[], properties={"type": "baseimages"}
    )
    assert selection.forcesyncs == ["6e240dd4-e304-4599-b7d8-e38e13cef058"]


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("True", {"condition": Condition(public=False, any_property=[])}),
        ("False", {"select": "forcesyncs"}),
        (
            "image.is_public and (not metadata_set or "
            "metadata_set.intersection(image.user_properties))",
            {"condition": Condition(public=True, any_property=None)},
        ),
        (
            "image.user_properties['type'] == 'base' and 'nid' in image.user_properties",
            {
                "condition": Condition(
                    public=False, any_property=["nid"], properties={"type": "base"}
                )
            },
        ),
    ],
)
def test_metadata_conditions_become_rules(condition: str, expected: dict[str, object]) -> None:
    assert glancesync_ini.translate("x", condition) == expected


@pytest.mark.parametrize(
    "condition",
    [
        "__import__('os').system('touch /tmp/pwned')",
        "image.is_public or 'nid' in image.user_properties",
        "image.size > 1000",
        "len(image.name) < 3",
        "image.is_public and",
    ],
)
def test_other_python_is_refused_showing_the_rule_to_write(tmp_path: Path, condition: str) -> None:
    with pytest.raises(ConfigError) as raised:
        glancesync_ini.translate("[master] metadata_condition", condition)
    message = str(raised.value)
    assert "does not evaluate" in message
    assert "selection: {select: condition, condition: {public: true, any_property:" in message
    assert not Path("/tmp/pwned").exists()
    # appliance config check says the same, naming the key.
    conf = tmp_path / "glancesync.conf"
    conf.write_text(
        "[main]\nmaster_region = R\n[master]\ncredential = u,cA==,http://k/v3,t\n"
        f"metadata_condition = {condition}\n"
    )
    with pytest.raises(loader.ConfigError) as checked:
        _load(tmp_path, f"regions: {{enabled: true, glancesync_conf: {conf}}}\n")
    assert "regions.glancesync_conf:" in str(checked.value)
    assert "does not evaluate" in str(checked.value)


def test_bad_glancesync_credentials_are_named(tmp_path: Path) -> None:
    conf = tmp_path / "glancesync.conf"
    conf.write_text("[main]\nmaster_region = R\n[master]\ncredential = u,%%%,http://k,t\n")
    with pytest.raises(ConfigError, match=r"\[master\] credential: the password is not valid"):
        glancesync_ini.read(conf)


def test_the_rest_api_is_served_unless_turned_off(tmp_path: Path) -> None:
    from fedcloud_appliance import cli, status

    appliance = status.Appliance(region_state_dir=tmp_path)
    base = "regions: {enabled: true, master: {region: R}, targets: {m: {}}%s}\n"
    on = cli._region_api(_load(tmp_path, base % ""), None, appliance)  # type: ignore[arg-type]
    assert on is not None
    code, body = on("GET", "/v1/regions", {})  # no token: refused before anything else
    assert code == 401 and b"X-Auth-Token" in body
    off = _load(tmp_path, base % ", api: false")
    assert cli._region_api(off, None, appliance) is None  # type: ignore[arg-type]
    assert cli.master_auth_url(off) == "https://keystone.test:5000/v3"
