"""Rendered files are what each service's own loader accepts (a contract test)."""

import os
from pathlib import Path

import pytest

from fedcloud_accounting import config as accounting_config
from fedcloud_appliance import loader, render
from fedcloud_bdii import config as bdii_config
from fedcloud_cloudkeeper.config import Config as CloudkeeperConfig
from fedcloud_common.openstack import Credentials
from fedcloud_common.services import RENDERED_DIR, by_section

EXAMPLE = Path(__file__).resolve().parents[1] / "etc" / "appliance.example.yaml"


@pytest.fixture
def rendered(tmp_path):
    """The example config with its secret files made real, rendered."""
    host = tmp_path / "host"
    config = loader.load(EXAMPLE, check_files=False)
    secrets = {}
    for name in ("openstack-password", "appdb-token"):
        path = host / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"{name}-value\n")
        os.chmod(path, 0o600)
        secrets[name] = path
    auth = config.openstack.model_copy(update={"password_file": secrets["openstack-password"]})
    lists = [
        lst.model_copy(update={"token_file": secrets["appdb-token"]}) for lst in config.images.lists
    ]
    config = config.model_copy(
        update={"openstack": auth, "images": config.images.model_copy(update={"lists": lists})}
    )
    out = tmp_path / "rendered"
    render.render_all(config, out)
    return config, out


def in_volume(out, container_path: str) -> Path:
    """Where a path the services see lies in the rendered directory."""
    return out / Path(container_path).relative_to(RENDERED_DIR)


def test_accounting_json_is_accepted_by_both_accounting_jobs(rendered):
    config, out = rendered
    path = out / "accounting.json"
    settings = accounting_config.load(path)
    extract, send = settings.extract, settings.send
    assert extract.site_name == config.site.name
    assert extract.project_tag == "fedcloud"
    assert extract.start_date.isoformat() == "2026-01-01"
    password = in_volume(out, str(extract.openstack.password_file))
    assert password.read_text() == "openstack-password-value\n"
    assert password.stat().st_uid == by_section("accounting").uid
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
    token = in_volume(out, str(source.token_file))
    assert token.read_text() == "appdb-token-value\n"
    assert (token.stat().st_uid, token.stat().st_mode & 0o777) == (by_section("images").uid, 0o400)
    assert loaded.accepted_formats == ("qcow2", "raw")
    assert loaded.vo_projects == {"fedcloud.egi.eu": "vo-fedcloud"}
    assert isinstance(loaded.openstack, Credentials)
    password = loaded.openstack.password_file
    assert str(password) == f"{RENDERED_DIR}/secrets/images/openstack-password"
    assert loaded.openstack.project_name == "fedcloud-ops"


def test_bdii_files_are_accepted_by_both_bdii_roles(rendered):
    config, out = rendered
    resource = bdii_config.load(out / "bdii" / "resource.json")
    site = bdii_config.load(out / "bdii" / "site.json")
    assert resource.site == site.site == config.site.name
    assert resource.vos == {"fedcloud.egi.eu": "vo-fedcloud"}
    assert resource.endpoint == str(config.openstack.auth_url)
    assert resource.delete_delay == 3600
    assert resource.openstack is not None and resource.openstack.username == "fedcloud"
    assert site.resource_urls == ["ldap://resource-bdii:2170"]
    assert site.openstack is None


def test_settings_are_world_readable_and_hold_no_secret(rendered):
    _, out = rendered
    for path in out.rglob("*.json"):
        assert os.stat(path).st_mode & 0o777 == 0o644
        text = path.read_text()
        assert '"password"' not in text
        assert "-value" not in text


def test_each_service_gets_its_own_copy_readable_by_its_user_alone(rendered):
    _, out = rendered
    for service in ("images", "bdii", "accounting"):
        uid = by_section(service).uid
        directory = out / "secrets" / service
        assert (directory.stat().st_uid, directory.stat().st_mode & 0o777) == (uid, 0o700)
        for secret in directory.iterdir():
            assert (secret.stat().st_uid, secret.stat().st_mode & 0o777) == (uid, 0o400)
    assert sorted(p.name for p in (out / "secrets" / "images").iterdir()) == [
        "appdb-token",
        "openstack-password",
    ]


def test_a_disabled_service_loses_its_file(rendered):
    config, out = rendered
    config = config.model_copy(
        update={"accounting": config.accounting.model_copy(update={"enabled": False})}
    )
    render.render_all(config, out)
    assert not (out / "accounting.json").exists()
    assert not (out / "secrets" / "accounting").exists()
    assert (out / "bdii" / "site.json").exists()


def test_outbound_settings_reach_each_service_with_its_own_copy_of_the_ca(rendered, tmp_path):
    config, out = rendered
    bundle = tmp_path / "host" / "outbound-ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    outbound = config.outbound.model_copy(
        update={"https_proxy": "http://proxy.test:3128/", "no_proxy": ["keystone.example.org"],
                "ca_bundle": bundle}
    )  # fmt: skip
    render.render_all(config.model_copy(update={"outbound": outbound}), out)
    proxy = {
        "HTTPS_PROXY": "http://proxy.test:3128",
        "NO_PROXY": "localhost,127.0.0.1,keystone.example.org",
    }

    images = CloudkeeperConfig.from_file(out / "cloudkeeper.json")
    assert proxy.items() <= images.environment.items()
    assert isinstance(images.https_verify, str)
    assert in_volume(out, images.https_verify).stat().st_uid == by_section("images").uid
    resource = bdii_config.load(out / "bdii" / "resource.json")
    assert proxy.items() <= resource.provider_environment.items()
    ca = in_volume(out, resource.provider_environment["REQUESTS_CA_BUNDLE"])
    assert ca.read_text() == bundle.read_text()
    assert ca.stat().st_uid == by_section("bdii").uid
    send = accounting_config.load(out / "accounting.json").send
    assert proxy.items() <= send.environment.items()
    assert in_volume(out, str(send.ca_bundle)).read_text() == bundle.read_text()
