import os
import textwrap
from pathlib import Path

import pytest

from fedcloud_appliance import loader
from tests.support.applianceconfig import MINIMAL, SECRET, write_password

EXAMPLE = Path(__file__).resolve().parents[1] / "etc" / "appliance.example.yaml"


@pytest.fixture
def write(tmp_path):
    password = write_password(tmp_path)

    def write(text: str) -> Path:
        path = tmp_path / "appliance.yaml"
        path.write_text(textwrap.dedent(text).replace("PASSWORD", str(password)))
        return path

    return write


def problems(path) -> list[str]:
    with pytest.raises(loader.ConfigError) as error:
        loader.load(path)
    assert SECRET not in str(error.value)
    return error.value.problems


def test_the_shipped_example_is_valid():
    config = loader.load(EXAMPLE, check_files=False)
    assert config.site.name == "MY-SITE"
    assert config.images.lists[0].vo == "fedcloud.egi.eu"
    assert config.accounting.enabled


def test_a_minimal_file_gets_the_documented_defaults(write):
    config = loader.load(write(MINIMAL))
    assert config.images.schedule == "0 */4 * * *"
    assert config.bdii.schedule == "*/30 * * * *"
    assert config.accounting.enabled is False
    assert str(config.images.ca_dir) == "/etc/grid-security/certificates"
    assert config.openstack_for("bdii") == config.openstack


def test_a_misspelt_key_is_named_with_a_suggestion(write):
    found = problems(write(MINIMAL + "images:\n  shedule: '0 * * * *'\n"))
    assert len(found) == 1
    assert found[0].startswith("images.shedule: not a known key; did you mean 'schedule'?")


def test_a_bad_cron_expression_names_the_key_and_shows_an_example(write):
    found = problems(write(MINIMAL + "bdii:\n  schedule: every half hour\n"))
    assert found[0].startswith("bdii.schedule:")
    assert "'0 */4 * * *'" in found[0]


def test_all_problems_are_reported_at_once(write):
    text = MINIMAL.replace("site: {name: TEST-SITE, hostname: cloud.test}", "site: {}")
    found = problems(write(text + "images:\n  formats: [iso]\n"))
    keys = sorted(p.split(":")[0] for p in found)
    assert keys == ["images.formats[0]", "site.hostname", "site.name"]


def test_credentials_must_be_given_one_way(write):
    text = MINIMAL + "  application_credential_id: abc\n"
    found = problems(write(text))
    assert found[0].startswith("openstack: ")
    assert "exactly one way" in found[0]


def test_an_enabled_service_without_credentials_is_an_error(write):
    text = "site: {name: S, hostname: h}\n"
    found = problems(write(text))
    assert "images is enabled but has no OpenStack credentials" in found[0]


def test_a_readable_secret_file_is_refused_with_the_fix(write, tmp_path):
    path = write(MINIMAL)
    os.chmod(tmp_path / "secrets" / "password", 0o644)
    found = problems(path)
    assert found[0].startswith("openstack: secret file")
    assert f"chmod 600 {tmp_path / 'secrets' / 'password'}" in found[0]


def test_openstack_secrets_must_live_where_the_services_mount_them(write, tmp_path):
    stray = tmp_path / "password-elsewhere"
    stray.write_text("pw")
    os.chmod(stray, 0o600)
    found = problems(write(MINIMAL.replace("PASSWORD", str(stray))))
    assert found == [
        f"openstack: {stray} must be in {tmp_path / 'secrets'}/, the directory the "
        "appliance's services mount; move it there"
    ]


def test_accounting_needs_projects_or_a_tag(write, tmp_path):
    found = problems(write(MINIMAL + "accounting:\n  caso: {vo_property: VO}\n"))
    assert found[0].startswith("accounting: ")
    assert "project_tag" in found[0]


def test_invalid_yaml_gives_the_line(write):
    found = problems(write(MINIMAL + "images: [unclosed\n"))
    assert "not valid YAML at line" in found[0]


def test_a_missing_file_says_how_to_fix_it(tmp_path):
    found = problems(tmp_path / "nope.yaml")
    assert "file not found" in found[0]


def test_accounting_needs_a_start_date_so_a_new_site_does_not_start_in_1970(write):
    found = problems(write(MINIMAL + "accounting:\n  caso: {project_tag: fedcloud}\n"))
    assert found[0].startswith("accounting: caso.start_date is required")


def test_accounting_refuses_application_credentials_caso_cannot_use(write, tmp_path):
    secret = tmp_path / "secrets" / "appcred"
    secret.write_text("x")
    os.chmod(secret, 0o600)
    text = (
        "site: {name: S, hostname: h}\n"
        "openstack: {auth_url: 'https://k/v3', application_credential_id: id, "
        f"application_credential_secret_file: {secret}}}\n"
        "accounting:\n  caso: {project_tag: t, start_date: 2026-01-01}\n"
    )
    found = problems(write(text))
    assert "cASO authenticates with username + password_file only" in found[0]


def test_a_relative_config_path_still_finds_its_secrets_directory(write, tmp_path, monkeypatch):
    write(MINIMAL)  # the password file is named by its absolute path
    monkeypatch.chdir(tmp_path)
    assert loader.load("appliance.yaml").site.name == "TEST-SITE"


def test_an_outbound_proxy_reaches_every_http_client_with_localhost_exempt(write, tmp_path):
    bundle = tmp_path / "proxy-ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    config = loader.load(
        write(
            MINIMAL
            + "outbound:\n  https_proxy: http://proxy.test:3128\n  no_proxy: [keystone.test]\n"
            + f"  ca_bundle: {bundle}\n"
        )
    )
    env = config.outbound.environment()
    assert env["HTTPS_PROXY"] == env["https_proxy"] == "http://proxy.test:3128"
    assert env["NO_PROXY"] == env["no_proxy"] == "localhost,127.0.0.1,keystone.test"
    assert loader.load(write(MINIMAL)).outbound.environment() == {}
    missing = problems(write(MINIMAL + "outbound:\n  ca_bundle: /nonexistent/ca.pem\n"))
    assert missing == [
        "outbound.ca_bundle: /nonexistent/ca.pem does not exist; put the PEM file in the "
        "config directory or remove the key"
    ]


def test_a_key_given_twice_is_an_error_naming_both_lines(write):
    path = write(MINIMAL + "images:\n  schedule: '0 * * * *'\nimages:\n  enabled: false\n")
    (problem,) = problems(path)
    assert problem.startswith("images: given twice (lines")
    assert "keep one" in problem


def test_a_list_for_a_vo_with_no_project_anywhere_is_an_error(write):
    path = write(
        MINIMAL
        + "images:\n  endorser: {dn: /CN=s, ca: /CN=c}\n  lists:\n"
        + "    - {name: l, url: 'https://x.test/l', vo: orphan.vo}\n"
    )
    (problem,) = problems(path)
    assert problem.startswith("images.lists[0]: VO 'orphan.vo' has no project")
    mapped = write(
        MINIMAL
        + "images:\n  endorser: {dn: /CN=s, ca: /CN=c}\n  lists:\n"
        + "    - {name: l, url: 'https://x.test/l', vo: orphan.vo}\n"
        + "bdii:\n  vos: {orphan.vo: {project: p}}\n"
    )
    assert loader.load(mapped).images.lists[0].vo == "orphan.vo"


def test_a_problem_across_sections_is_not_hidden_behind_two_typos(write):
    path = write(
        "site: {name: TEST-SITE, hostname: cloud.test}\n"  # no openstack section at all
        "images: {schedul: '0 * * * *'}\n"
        "accounting: {enabled: false, colour: blue}\n"
    )
    found = problems(path)
    assert "images.schedul: not a known key; did you mean 'schedule'?" in found[0]
    assert found[1].startswith("accounting.colour: not a known key")
    # The third: images is enabled (by default) with no credentials anywhere.
    assert found[2:] == [
        "(top level): images is enabled but has no OpenStack credentials: add a top-level "
        "'openstack' section or 'images.openstack'"
    ]


def test_a_list_url_that_is_not_http_says_so_with_the_value(write):
    path = write(
        MINIMAL
        + "images:\n  endorser: {dn: /CN=s, ca: /CN=c}\n  lists:\n"
        + "    - {name: l, url: 'file:///etc/passwd', project: p}\n"
    )
    (problem,) = problems(path)
    assert problem == (
        "images.lists[0].url: URL scheme should be 'http' or 'https' "
        "(got 'file:///etc/passwd'); write a full https:// URL"
    )
