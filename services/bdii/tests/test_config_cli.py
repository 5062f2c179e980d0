"""The settings (TOML and the rendered JSON), the site YAML handed to
cloud-info-provider, and the CLI's exits."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fedcloud_bdii import cli, config
from fedcloud_bdii.schema import Schema
from fedcloud_common import settings
from fedcloud_common.errors import ConfigError
from fedcloud_common.settings.bdii import BdiiSettings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bdii.toml"
    path.write_text(text)
    return path


def test_toml_reads_site_vos_and_delay(tmp_path):
    loaded = config.load(
        write(tmp_path, 'site = "S"\ndelete_delay = 60\n[vos]\n"vo.example" = "p1"\n')
    )
    assert loaded.site == "S" and loaded.delete_delay == 60 and loaded.vos == {"vo.example": "p1"}
    assert loaded.port == 2170  # the BDII port, unless a test moves it


def test_toml_and_the_rendered_json_are_one_model(tmp_path):
    """A site BDII described in TOML reads back equal to the same settings as JSON."""
    toml = write(
        tmp_path,
        'site = "S"\nresource_urls = ["ldap://r:2170"]\n'
        '[admin_domain]\ncountry = "nl"\nwww = "https://site.example.org"\n'
        '[admin_domain.contacts]\nsecurity = "csirt@example.org"\n'
        '[public_address]\nhost = "bdii.example.org"\nport = 2180\n',
    )
    from_toml = config.load(toml)
    assert from_toml.admin_domain.country == "NL"
    assert from_toml.public_address is not None and from_toml.public_address.port == 2180
    settings.write(from_toml, tmp_path / "site.json")
    assert config.load(tmp_path / "site.json") == from_toml


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('site = "S"\ncolour = 1\n', "colour: not a known setting"),
        ("port = 1\n", "site: Field required"),
        ('site = "S"\nport = 0\n', "port: Input should be greater than or equal to 1"),
        ('site = "S"\n[admin_domain]\ncountry = "Netherlands"\n', "'NL' for the Netherlands"),
        (
            'site = "S"\n[admin_domain.contacts]\nsysadmin = "ops-at-example"\n',
            "admin_domain.contacts.sysadmin: 'ops-at-example' is not an email address",
        ),
        (
            'site = "S"\n[admin_domain.contacts]\nboss = "b@example.org"\n',
            "admin_domain.contacts.boss",
        ),
        ('site = "S"\n[public_address]\nhost = "ldap://h:2170"\n', "is not a host name"),
        ('site = "S"\nvos = [\n', "not valid TOML"),
    ],
)
def test_config_names_the_file_and_what_is_wrong(tmp_path, text, problem):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=re.escape(problem)) as error:
        config.load(path)
    assert str(error.value).startswith(f"{path}: ")


def test_site_yaml_is_what_cloud_info_provider_requires():
    resource = BdiiSettings(
        site="S", endpoint="https://k:5000/v3", vos={"vo.a": "p1", "vo.b": "p2"}
    )
    yaml = json.loads(config.site_yaml(resource))  # JSON is YAML; cloud-info-provider: safe_load
    assert yaml == {
        "gocdb": "S",
        "endpoint": "https://k:5000/v3",
        "vos": [
            {"name": "vo.a", "auth": {"project_id": "p1"}},
            {"name": "vo.b", "auth": {"project_id": "p2"}},
        ],
    }
    command = config.provider_command(resource, Path("/x/site.yaml"))
    assert command[:5] == [
        "cloud-info-provider-service",
        "--middleware",
        "openstack",
        "--format",
        "glue21json",
    ]
    assert command[-1] == "/x/site.yaml"


def test_cli_prints_the_shipped_schema(capsys):
    assert cli.main(["schema"]) == 0
    assert capsys.readouterr().out == Schema().render()


def test_cli_fails_loudly_on_a_bad_config_or_a_bdii_that_is_down(tmp_path, caplog, free_port):
    assert cli.main(["publish", "-c", str(tmp_path / "missing.toml")]) == 1
    assert f"{tmp_path / 'missing.toml'}: No such file or directory" in caplog.text
    assert cli.main(["aggregate", "-c", str(tmp_path / "site.json")]) == 1
    assert "site.json: does not exist; is the render step done" in caplog.text
    down = write(tmp_path, f'site = "S"\nport = {free_port()}\n')
    assert cli.main(["health", "-c", str(down)]) == 1


def test_after_a_failed_cycle_the_next_comes_sooner_backing_off_to_the_interval():
    waits = [cli.next_cycle_in(120, failed) for failed in range(6)]
    assert waits == [120, 10, 20, 40, 80, 120]
    assert cli.next_cycle_in(1800, 0) == 1800 and cli.next_cycle_in(5, 3) == 5
