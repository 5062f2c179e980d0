"""Every key of appliance.yaml's ``images`` reaches cloudkeeper's rendered settings.

Each test writes an appliance.yaml as an operator would, with one key set to
a value other than its default, renders it (``render_all``: the file the
services mount) and reads ``cloudkeeper.json`` back through the settings
model cloudkeeper loads. The last test fails when a key is added to the
section without a test of its own here.
"""

from __future__ import annotations

import inspect
import os
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from fedcloud_appliance import loader, render
from fedcloud_appliance.config import ImageList, Images
from fedcloud_appliance.jobs import job_specs
from fedcloud_common import settings
from fedcloud_common.errors import ConfigError
from fedcloud_common.services import RENDERED_DIR, by_section
from fedcloud_common.settings.cloudkeeper import CloudkeeperSettings
from tests.support.applianceconfig import MINIMAL, write_password

LIST = """\
lists:
  - name: vo-list
    url: https://lists.test/vo.list
endorser: {dn: /CN=signer, ca: /CN=ca}
"""

Render = Callable[..., CloudkeeperSettings]


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    write_password(tmp_path)
    return tmp_path


def _write(config_dir: Path, images: str) -> Path:
    """appliance.yaml with this ``images`` section (the BDII off: not under test)."""
    password = config_dir / "secrets" / "password"
    text = MINIMAL.replace("PASSWORD", str(password)) + "bdii: {enabled: false}\n"
    if images:
        text += "images:\n" + textwrap.indent(textwrap.dedent(images), "  ")
    path = config_dir / "appliance.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def rendered(config_dir: Path) -> Render:
    """The settings cloudkeeper loads for an ``images`` section."""

    def rendered(images: str = LIST) -> CloudkeeperSettings:
        config = loader.load(_write(config_dir, images))
        render.render_all(config, config_dir / "rendered")
        return settings.load(CloudkeeperSettings, config_dir / "rendered" / "cloudkeeper.json")

    return rendered


def _secret(config_dir: Path, name: str, text: str) -> Path:
    path = config_dir / "secrets" / name
    path.write_text(text)
    os.chmod(path, 0o600)
    return path


def _staged(config_dir: Path, seen_at: Path | str | None) -> Path:
    """Where a path the container sees lies in the rendered directory."""
    assert seen_at is not None
    staged = config_dir / "rendered" / Path(seen_at).relative_to(RENDERED_DIR)
    assert (staged.stat().st_uid, staged.stat().st_mode & 0o777) == (
        by_section("images").uid,
        0o400,
    )
    return staged


# -- images.* --


def test_enabled_false_renders_no_settings_at_all(config_dir, rendered):
    rendered()
    config = loader.load(_write(config_dir, "enabled: false\n" + LIST))
    render.render_all(config, config_dir / "rendered")
    assert not (config_dir / "rendered" / "cloudkeeper.json").exists()
    assert not (config_dir / "rendered" / "secrets" / "images").exists()


def test_schedule_is_the_image_sync_jobs_cron(config_dir):
    config = loader.load(_write(config_dir, "schedule: '15 */2 * * *'\n" + LIST))
    (sync,) = [spec for spec in job_specs(config, "1") if spec.name == "image-sync"]
    assert sync.schedule == "15 */2 * * *"


def test_openstack_of_images_is_used_instead_of_the_shared_credentials(config_dir, rendered):
    assert rendered().openstack.username == "fedcloud"  # MINIMAL's shared credentials
    own = f"""\
        openstack:
          auth_url: https://keystone.images.test:5000/v3
          username: image-replicator
          password_file: {_secret(config_dir, "images-password", "pw")}
          project_name: images
        """
    credentials = rendered(textwrap.dedent(own) + LIST).openstack
    assert (credentials.username, credentials.project_name) == ("image-replicator", "images")
    assert str(credentials.auth_url) == "https://keystone.images.test:5000/v3"
    assert _staged(config_dir, credentials.password_file).read_text() == "pw"


def test_lists_become_the_lists_cloudkeeper_syncs(rendered):
    assert rendered("lists: []\n").lists == ()
    (source,) = rendered().lists
    assert (source.name, source.url) == ("vo-list", "https://lists.test/vo.list")


def test_lists_file_is_staged_for_cloudkeeper_like_a_secret(config_dir, rendered):
    assert rendered().image_lists_conf is None
    conf = _secret(config_dir, "image-lists.conf", "https://T0KEN:x@lists.test/x.list\n")
    found = rendered(f"lists_file: {conf}\n" + LIST).image_lists_conf
    assert _staged(config_dir, found).read_text() == conf.read_text()


def test_endorser_signs_the_lists_without_their_own_and_lists_file(rendered):
    found = rendered()
    assert (found.endorser_dn, found.endorser_ca) == ("/CN=signer", "/CN=ca")
    (source,) = found.lists
    assert (source.endorser_dn, source.endorser_ca) == ("/CN=signer", "/CN=ca")


def test_ca_dir_is_where_signatures_are_verified(rendered):
    assert rendered().ca_path == Path("/etc/grid-security/certificates")
    assert rendered("ca_dir: /etc/igtf\n" + LIST).ca_path == Path("/etc/igtf")


def test_formats_are_the_formats_glance_gets(rendered):
    assert rendered().accepted_formats == ("qcow2", "raw")
    assert rendered("formats: [raw, vmdk]\n" + LIST).accepted_formats == ("raw", "vmdk")


def test_tag_marks_the_images_cloudkeeper_manages(rendered):
    assert rendered().tag == "fedcloud-appliance"
    assert rendered("tag: site-images\n" + LIST).tag == "site-images"


def test_prefix_goes_before_every_image_name(rendered):
    assert rendered().name_prefix == ""
    assert rendered("prefix: 'EGI '\n" + LIST).name_prefix == "EGI "


def test_parallel_downloads_bounds_the_downloads_at_once(rendered):
    assert rendered().parallel_downloads == 2
    assert rendered("parallel_downloads: 5\n" + LIST).parallel_downloads == 5


def test_download_retries_is_how_often_a_download_is_resumed(rendered):
    assert rendered().retries == 3
    assert rendered("download_retries: 0\n" + LIST).retries == 0


def test_http_timeout_s_limits_each_request_to_list_and_image_servers(rendered):
    assert rendered().timeout_s == 30
    assert rendered("http_timeout_s: 120\n" + LIST).timeout_s == 120


def test_event_hook_is_the_command_run_on_each_image_event(rendered):
    assert rendered().event_hook is None
    hook = "/usr/local/bin/notify-site --image-event"
    assert rendered(f"event_hook: {hook}\n" + LIST).event_hook == hook


def test_vmcatcher_list_names_the_list_of_vmcatchers_images(rendered):
    assert rendered().vmcatcher_list == "vmcatcher"
    assert rendered("vmcatcher_list: site-cache\n" + LIST).vmcatcher_list == "site-cache"


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("parallel_downloads: 0", "images.parallel_downloads: Input should be greater than or"),
        ("parallel_downloads: 17", "images.parallel_downloads: Input should be less than or"),
        ("download_retries: -1", "images.download_retries: Input should be greater than or"),
        ("download_retries: 11", "images.download_retries: Input should be less than or"),
        ("http_timeout_s: 0", "images.http_timeout_s: Input should be greater than 0"),
        ("event_hook: ''", "images.event_hook: String should have at least 1 character"),
        ("vmcatcher_list: 'my cache'", "images.vmcatcher_list: String should match pattern"),
        ("vmcatcher_list: vo-list", "vmcatcher_list 'vo-list' is also the name of a list"),
        ("formats: []", "images.formats: List should have at least 1 item"),
    ],
)
def test_values_cloudkeeper_would_refuse_are_refused_in_appliance_yaml(config_dir, key, problem):
    with pytest.raises(loader.ConfigError) as error:
        loader.load(_write(config_dir, f"{key}\n" + LIST))
    assert any(problem in found for found in error.value.problems), error.value.problems


# -- images.lists[].* --


def _one_list(**keys: str) -> str:
    lines = "".join(f"    {key}: {value}\n" for key, value in keys.items())
    return (
        "lists:\n  - name: vo-list\n    url: https://lists.test/vo.list\n"
        + lines
        + ("endorser: {dn: /CN=signer, ca: /CN=ca}\n")
    )


def test_lists_name_names_the_list_in_glance_and_status(rendered):
    (source,) = rendered(_one_list()).lists
    assert source.name == "vo-list"


def test_lists_url_is_where_the_list_is_fetched(rendered):
    (source,) = rendered(_one_list()).lists
    assert source.url == "https://lists.test/vo.list"


def test_lists_token_file_is_staged_for_cloudkeeper_alone(config_dir, rendered):
    token = _secret(config_dir, "appdb-token", "t0ken\n")
    (source,) = rendered(_one_list(token_file=str(token))).lists
    assert _staged(config_dir, source.token_file).read_text() == "t0ken\n"


def test_lists_endorser_of_a_list_wins_over_images_endorser(rendered):
    (source,) = rendered(_one_list(endorser="{dn: /CN=own-signer, ca: /CN=own-ca}")).lists
    assert (source.endorser_dn, source.endorser_ca) == ("/CN=own-signer", "/CN=own-ca")


def test_lists_vo_is_the_vo_the_list_must_be_for(rendered):
    (source,) = rendered(_one_list(vo="fedcloud.egi.eu", project="vo-fedcloud")).lists
    assert source.vo == "fedcloud.egi.eu"


def test_lists_project_is_where_the_images_are_shared_and_vmcatchers_go(rendered):
    found = rendered(_one_list(vo="fedcloud.egi.eu", project="vo-fedcloud"))
    (source,) = found.lists
    assert source.project == "vo-fedcloud"
    assert found.vo_projects == {"fedcloud.egi.eu": "vo-fedcloud"}


def test_lists_enabled_false_keeps_the_list_but_disabled(rendered):
    (source,) = rendered(_one_list(enabled="false")).lists
    assert source.enabled is False


def test_lists_prefix_goes_before_this_lists_image_names(rendered):
    (source,) = rendered(_one_list(prefix="'VO '")).lists
    assert source.prefix == "VO "


def test_lists_adopt_names_the_old_tool_whose_images_the_list_takes_over(rendered):
    assert rendered().lists[0].adopt is None
    (source,) = rendered(_one_list(adopt="atrope")).lists
    assert source.adopt == "atrope"
    with pytest.raises(ConfigError, match="adopt"):
        rendered(_one_list(adopt="vmcatcher"))


def test_store_is_the_host_directory_compose_binds_at_image_data(rendered, config_dir, capsys):
    """Not a rendered setting: the services always see /image_data; compose binds it."""
    from fedcloud_appliance import cli

    found = rendered(LIST + "store: /srv/fedcloud-images\n")
    assert str(found.cache_dir) == "/image_data"
    path = config_dir / "appliance.yaml"
    assert cli.main(["--config", str(path), "config", "env"]) == 0
    assert "FEDCLOUD_IMAGE_DATA=/srv/fedcloud-images" in capsys.readouterr().out.splitlines()


def test_every_key_of_the_section_has_a_test_here():
    tests = [name for name, _ in inspect.getmembers(sys.modules[__name__], inspect.isfunction)]
    untested = [f"images.{key}" for key in Images.model_fields if not _tested(tests, key)]
    untested += [
        f"images.lists[].{key}"
        for key in ImageList.model_fields
        if not _tested(tests, f"lists_{key}")
    ]
    assert untested == []


def _tested(tests: list[str], key: str) -> bool:
    return any(name.startswith(f"test_{key}_") for name in tests)
