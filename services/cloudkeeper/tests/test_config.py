"""The settings the appliance renders, loaded through the common model, and
cloudkeeper's image-lists.conf."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedcloud_cloudkeeper.config import Config
from fedcloud_common.errors import ConfigError
from fedcloud_common.openstack import Credentials


def _file(tmp_path: Path, settings: dict) -> Path:
    path = tmp_path / "cloudkeeper.json"
    path.write_text(json.dumps(settings))
    return path


def test_the_rendered_json_becomes_a_typed_config(tmp_path):
    path = _file(tmp_path, {
        "lists": [{"name": "fedcloud", "url": "https://lists.example.org/fedcloud.list",
                   "endorser_dn": "/CN=signer", "endorser_ca": "/CN=ca", "project": "vo-fedcloud",
                   "token_file": "/etc/secrets/token"}],
        "openstack": {"auth_url": "https://keystone.example.org:5000/v3", "username": "ck",
                      "password_file": "/etc/secrets/password", "project_name": "ops"},
        "ca_path": "/certs", "accepted_formats": ["raw"], "vo_projects": {"a.vo": "vo-a"},
        "parallel_downloads": 4, "event_hook": "logger image event",
    })  # fmt: skip
    config = Config.from_file(path)
    (source,) = config.lists
    assert (source.endorser_dn, source.endorser_ca) == ("/CN=signer", "/CN=ca")
    assert source.token_file == Path("/etc/secrets/token") and source.token is None
    assert config.ca_path == Path("/certs") and config.accepted_formats == ("raw",)
    assert isinstance(config.openstack, Credentials)
    assert config.openstack.password_file == Path("/etc/secrets/password")
    assert (config.parallel_downloads, config.event_hook) == (4, "logger image event")
    assert config.vmcatcher_list == "vmcatcher" and config.retries == 3  # defaults


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"ca_dir": "/x"}, "ca_dir: not a known setting"),
        ({"parallel_downloads": 0},
         "parallel_downloads: Input should be greater than or equal to 1"),
        ({"parallel_downloads": 17},
         "parallel_downloads: Input should be less than or equal to 16"),
        ({"retries": -1}, "retries: Input should be greater than or equal to 0"),
        ({"timeout_s": 0}, "timeout_s: Input should be greater than 0"),
        ({"event_hook": ""}, "event_hook: String should have at least 1 character"),
        ({"vmcatcher_list": "../x"}, "vmcatcher_list: String should match pattern"),
        ({"accepted_formats": ["iso"]}, "accepted_formats.0: Input should be"),
        ({"lists": [{"name": "a b", "url": "https://x/", "endorser_dn": "/CN=s",
                     "endorser_ca": "/CN=c"}]}, "lists.0.name: String should match pattern"),
        ({"lists": [{"name": "a", "url": "https://x/", "endorser_dn": "/CN=s",
                     "endorser_ca": "/CN=c", "token": "inline"}]}, "lists.0.token: not a known"),
        ({"lists": [{"name": "vmcatcher", "url": "https://x/", "endorser_dn": "/CN=s",
                     "endorser_ca": "/CN=c"}]}, "vmcatcher_list 'vmcatcher' is also"),
    ],
    ids=["unknown-key", "no-download", "too-many-downloads", "negative-retries", "no-timeout",
         "empty-hook", "vmcatcher-list-path", "unknown-format", "list-name-with-space",
         "token-never-in-the-file", "vmcatcher-list-clashes"],
)  # fmt: skip
def test_a_bad_setting_is_refused_at_start_naming_the_file_and_key(tmp_path, settings, problem):
    path = _file(tmp_path, settings)
    with pytest.raises(ConfigError) as error:
        Config.from_file(path)
    assert str(error.value).startswith(f"{path}: ")
    assert problem in str(error.value)


def test_a_missing_file_says_the_render_step_has_not_run(tmp_path):
    with pytest.raises(ConfigError, match="does not exist; is the render step done"):
        Config.from_file(tmp_path / "nope.json")


def test_image_lists_conf_lines_become_lists_with_the_token_out_of_the_url(tmp_path):
    conf = tmp_path / "image-lists.conf"
    conf.write_text(
        "# subscribed lists\n"
        "https://S3CRET:x-oauth-basic@vmcaster.example.org/store/vo/fedcloud.egi.eu/image.list\n"
        "\n"
        "https://vmcaster.example.org/store/vo/vo.demo/image.list  # public\n"
    )
    settings = {"image_lists_conf": str(conf), "endorser_dn": "/CN=signer", "endorser_ca": "/CN=ca"}
    config = Config.from_file(_file(tmp_path, settings))
    first, second = config.lists
    assert first.url == "https://vmcaster.example.org/store/vo/fedcloud.egi.eu/image.list"
    assert first.token == "S3CRET" and "S3CRET" not in repr(first)
    assert "S3CRET" not in config.model_dump_json()
    assert second.token is None and first.name != second.name
    assert first.endorser_dn == "/CN=signer"
    assert config.model_copy(update={"timeout_s": 5.0}).lists[0].token == "S3CRET"


def test_image_lists_conf_needs_an_endorser_to_trust(tmp_path):
    conf = tmp_path / "image-lists.conf"
    conf.write_text("https://vmcaster.example.org/x.list\n")
    with pytest.raises(ConfigError, match="endorser_dn and endorser_ca"):
        Config.from_file(_file(tmp_path, {"image_lists_conf": str(conf)}))


def test_a_list_of_image_lists_conf_may_not_take_a_configured_lists_name(tmp_path):
    conf = tmp_path / "image-lists.conf"
    conf.write_text("https://vmcaster.example.org/x.list\n")
    path = _file(tmp_path, {
        "lists": [{"name": "vmcaster-example-org-x-list", "url": "https://other.example.org/x",
                   "endorser_dn": "/CN=s", "endorser_ca": "/CN=c"}],
        "image_lists_conf": str(conf), "endorser_dn": "/CN=s", "endorser_ca": "/CN=c",
    })  # fmt: skip
    with pytest.raises(ConfigError, match="two lists have the same name: vmcaster-example-org"):
        Config.from_file(path)


def test_an_unreadable_token_file_fails_that_list_not_the_run(tmp_path):
    from fedcloud_cloudkeeper.config import ListSource
    from fedcloud_cloudkeeper.job import Job

    class NoGlance:
        def managed(self):
            return []

    token = tmp_path / "token"
    token.write_text("s3cr3t")
    token.chmod(0o644)
    source = ListSource(name="a", url="https://lists.example.org/a", endorser_dn="/CN=s",
                        endorser_ca="/CN=ca", token_file=token)  # fmt: skip
    config = Config(lists=(source,), state_dir=tmp_path / "state", spool_dir=tmp_path / "spool",
                    cache_dir=tmp_path / "cache")  # fmt: skip
    report = Job(config, NoGlance()).sync()
    (outcome,) = report.lists
    assert report.failed and outcome.state == "error" and "chmod 600" in outcome.reason
    assert "s3cr3t" not in outcome.reason
    with pytest.raises(ConfigError, match="no such list"):
        Job(config, NoGlance()).sync(only="b")
