"""Rendered files are what each service's own loader accepts (a contract test)."""

import os
from pathlib import Path

import pytest

from fedcloud_accounting import config as accounting_config
from fedcloud_appliance import loader, render
from fedcloud_bdii.config import BdiiConfig
from fedcloud_cloudkeeper.config import Config as CloudkeeperConfig
from fedcloud_common.openstack import Credentials

EXAMPLE = Path(__file__).resolve().parents[1] / "etc" / "appliance.example.yaml"


@pytest.fixture
def rendered(tmp_path):
    config = loader.load(EXAMPLE, check_files=False)
    render.render_all(config, tmp_path)
    return config, tmp_path


def test_accounting_json_is_accepted_by_both_accounting_jobs(rendered):
    config, out = rendered
    path = out / "accounting.json"
    extract = accounting_config.load(accounting_config.ExtractConfig, path, "extract")
    send = accounting_config.load(accounting_config.SendConfig, path, "send")
    assert extract.site_name == config.site.name
    assert extract.project_tag == "fedcloud"
    assert extract.start_date.isoformat() == "2026-01-01"
    assert str(extract.keystone.password_file) == str(config.openstack.password_file)
    assert send.protocol == "ams"
    assert send.host == config.accounting.sender.host
    assert (send.ams_project, send.destination) == ("accounting", "eu-egi-cloud-accounting")


def test_cloudkeeper_json_is_accepted_by_cloudkeeper(rendered):
    config, out = rendered
    loaded = CloudkeeperConfig.from_file(out / "cloudkeeper.json")
    (source,) = loaded.lists
    want = config.images.lists[0]
    assert (source.name, source.url, source.vo, source.project) == (
        want.name,
        str(want.url),
        want.vo,
        want.project,
    )
    assert (source.endorser_dn, source.endorser_ca) == (want.endorser.dn, want.endorser.ca)
    assert str(source.token_file) == str(want.token_file)
    assert loaded.accepted_formats == ("qcow2", "raw")
    assert loaded.vo_projects == {"fedcloud.egi.eu": "vo-fedcloud"}
    credentials = Credentials.from_dict(loaded.openstack)
    assert credentials.password_file == config.openstack.password_file
    assert credentials.project_name == "fedcloud-ops"


def test_bdii_files_are_accepted_by_both_bdii_roles(rendered):
    config, out = rendered
    resource = BdiiConfig.load(out / "bdii" / "resource.json")
    site = BdiiConfig.load(out / "bdii" / "site.json")
    assert resource.site == site.site == config.site.name
    assert resource.vos == {"fedcloud.egi.eu": "vo-fedcloud"}
    assert resource.endpoint == str(config.openstack.auth_url)
    assert resource.delete_delay == 3600
    assert Credentials.from_dict(resource.openstack).username == "fedcloud"
    assert site.resource_urls == ["ldap://resource-bdii:2170"]
    assert site.openstack is None


def test_rendered_files_are_world_readable_and_hold_no_secret(rendered, tmp_path):
    _, out = rendered
    for path in out.rglob("*.json"):
        assert os.stat(path).st_mode & 0o777 == 0o644
        text = path.read_text()
        assert '"password"' not in text


def test_a_disabled_service_loses_its_file(rendered):
    config, out = rendered
    config = config.model_copy(
        update={"accounting": config.accounting.model_copy(update={"enabled": False})}
    )
    render.render_all(config, out)
    assert not (out / "accounting.json").exists()
    assert (out / "bdii" / "site.json").exists()
