"""The typed config, the site YAML handed to cloud-info-provider, and the CLI's exits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedcloud_bdii import cli
from fedcloud_bdii.config import BdiiConfig, ConfigError
from fedcloud_bdii.schema import Schema


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bdii.toml"
    path.write_text(text)
    return path


def test_config_reads_site_vos_and_delay(tmp_path):
    config = BdiiConfig.load(
        write(tmp_path, 'site = "S"\ndelete_delay = 60\n[vos]\n"vo.example" = "p1"\n')
    )
    assert config.site == "S" and config.delete_delay == 60 and config.vos == {"vo.example": "p1"}
    assert config.port == 2170  # the BDII port, unless a test moves it


@pytest.mark.parametrize(
    ("text", "problem"),
    [('site = "S"\ncolour = 1\n', "unknown keys"), ("port = 1\n", "'site' is required")],
)
def test_config_names_what_is_wrong(tmp_path, text, problem):
    with pytest.raises(ConfigError, match=problem):
        BdiiConfig.load(write(tmp_path, text))


def test_site_yaml_is_what_cloud_info_provider_requires():
    config = BdiiConfig(site="S", endpoint="https://k:5000/v3", vos={"vo.a": "p1", "vo.b": "p2"})
    yaml = json.loads(config.site_yaml())  # JSON is YAML; cloud-info-provider uses safe_load
    assert yaml == {
        "gocdb": "S",
        "endpoint": "https://k:5000/v3",
        "vos": [
            {"name": "vo.a", "auth": {"project_id": "p1"}},
            {"name": "vo.b", "auth": {"project_id": "p2"}},
        ],
    }
    command = config.provider_command(Path("/x/site.yaml"))
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
    assert "configuration" in caplog.text
    down = write(tmp_path, f'site = "S"\nport = {free_port()}\n')
    assert cli.main(["health", "-c", str(down)]) == 1


def test_after_a_failed_cycle_the_next_comes_sooner_backing_off_to_the_interval():
    waits = [cli.next_cycle_in(120, failed) for failed in range(6)]
    assert waits == [120, 10, 20, 40, 80, 120]
    assert cli.next_cycle_in(1800, 0) == 1800 and cli.next_cycle_in(5, 3) == 5
