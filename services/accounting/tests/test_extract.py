"""Reading cASO's log, rendering caso.conf, the watermark: no cloud needed.

The log lines are cASO 5.2.2's own formats (see caso/extract/manager.py);
the end-to-end tests produce them for real against the demo cloud.
"""

from __future__ import annotations

import configparser
import datetime
import json
import sys
from pathlib import Path

import pytest

from fedcloud_accounting import casoconf, config
from fedcloud_accounting.extract import ExtractJob, judge
from fedcloud_accounting.watermark import Watermark
from fedcloud_common.errors import ConfigError
from fedcloud_common.settings.accounting import ExtractSettings

P = "2026-11-22 04:14:34.389 10347"
OK_LOG = f"""\
{P} INFO caso.extract.manager [-] Extracting records for project 'aaa'
{P} INFO caso.extract.manager [-] Extracted 3 records in total for project 'aaa' (x to y)
{P} INFO caso.extract.manager [-] Extracting records for project 'bbb'
{P} INFO caso.extract.manager [-] Extracted 2 records in total for project 'bbb' (x to y)
"""
NOVA_DOWN_LOG = f"""\
{P} INFO caso.extract.manager [-] Extracting records for project 'aaa'
{P} ERROR caso.extract.manager [-] Extractor nova: cannot extract records for 'aaa', got \
the following exception: : keystoneauth1.exceptions.connection.ConnectTimeout: timed out
{P} ERROR caso.extract.manager Traceback (most recent call last):
{P} ERROR caso.extract.manager   File "x.py", line 1, in extract
{P} ERROR caso.extract.manager keystoneauth1.exceptions.connection.ConnectTimeout: timed out
{P} INFO caso.extract.manager [-] Extracted 0 records in total for project 'aaa' (x to y)
"""


def _openstack(tmp_path: Path, **overrides: object) -> dict[str, object]:
    password = tmp_path / "password"
    password.write_text("s3cret\n")
    password.chmod(0o600)
    return {
        "auth_url": "https://keystone:5000/v3",
        "username": "acct",
        "password_file": password,
        "project_name": "ops",
    } | overrides


def _config(tmp_path: Path, **overrides: object) -> ExtractSettings:
    values: dict[str, object] = {
        "site_name": "MY-SITE",
        "openstack": _openstack(tmp_path),
        "project_tag": "fedcloud",
        "state_dir": tmp_path / "state",
        "spool_dir": tmp_path / "spool",
        "start_date": "2026-01-01",
    }
    values.update(overrides)
    return ExtractSettings.model_validate(values)


def test_a_clean_run_is_judged_complete():
    verdict = judge(0, OK_LOG)
    assert verdict.problems() == []
    assert verdict.records == 5
    assert verdict.projects == {"aaa", "bbb"}


def test_an_extractor_failure_fails_the_run_though_caso_exits_0():
    verdict = judge(0, NOVA_DOWN_LOG)
    problems = verdict.problems()
    assert len(problems) == 1  # one error record, not one per traceback line
    assert "Extractor nova: cannot extract records for 'aaa'" in problems[0]


def test_keystone_refusing_the_project_list_is_a_failure():
    log = (
        f"{P} WARNING caso.extract.manager [-] Unable to get projects from Keystone, "
        "ignoring - You are not authorized (HTTP 403)\n"
    )
    problems = judge(0, log).problems()
    assert any("Unable to get projects" in p for p in problems)
    assert any("no project to account" in p for p in problems)


def test_a_project_that_never_finished_is_a_failure():
    log = OK_LOG.splitlines()[0] + "\n"
    assert "projects not finished: aaa" in judge(0, log).problems()


def test_a_non_zero_exit_is_a_failure():
    assert "cASO exited with status 1" in judge(1, OK_LOG).problems()


def test_caso_conf_never_double_scopes_and_names_the_vo_property(tmp_path):
    config = _config(tmp_path, vo_property="egi.eu:VO", extractors=["nova", "cinder"])
    parsed = configparser.ConfigParser(interpolation=None)
    parsed.read_string(casoconf.render(config))
    assert "project_name" not in parsed["keystone_auth"]
    assert "project_id" not in parsed["keystone_auth"]
    assert parsed["keystone_auth"]["password"] == "s3cret"
    assert parsed["DEFAULT"]["vo_property"] == "egi.eu:VO"
    assert parsed["DEFAULT"]["caso_tag"] == "fedcloud"
    assert parsed["DEFAULT"]["extractor"] == "nova,cinder"
    assert parsed["DEFAULT"]["messengers"] == "ssm"
    assert parsed["ssm"]["output_path"] == str(tmp_path / "spool")


def test_caso_conf_carries_the_credentials_region_ca_and_timeout(tmp_path):
    openstack = _openstack(
        tmp_path,
        region="RegionTwo",
        ca_bundle=tmp_path / "keystone-ca.pem",
        user_domain_name="ldap",
        project_domain_name="vo-projects",
        timeout_s=2.5,
    )
    parsed = configparser.ConfigParser(interpolation=None)
    parsed.read_string(casoconf.render(_config(tmp_path, openstack=openstack)))
    auth = parsed["keystone_auth"]
    assert (auth["auth_url"], auth["username"]) == ("https://keystone:5000/v3", "acct")
    assert (auth["user_domain_name"], auth["project_domain_name"]) == ("ldap", "vo-projects")
    assert auth["cafile"] == str(tmp_path / "keystone-ca.pem")
    assert auth["timeout"] == "3"  # keystoneauth takes whole seconds: rounded up
    assert parsed["DEFAULT"]["region_name"] == "RegionTwo"


def test_application_credentials_are_refused_because_caso_re_scopes(tmp_path):
    secret = tmp_path / "appcred"
    secret.write_text("x\n")
    appcred = {
        "auth_url": "https://keystone:5000/v3",
        "application_credential_id": "id",
        "application_credential_secret_file": secret,
    }
    with pytest.raises(ValueError, match="re-scopes its token to each project"):
        _config(tmp_path, openstack=appcred)


def test_explicit_projects_without_a_tag_pick_up_no_tagged_project(tmp_path):
    config = _config(tmp_path, project_tag=None, projects=["p1", "p2"])
    parsed = configparser.ConfigParser(interpolation=None)
    parsed.read_string(casoconf.render(config))
    assert parsed["DEFAULT"]["projects"] == "p1,p2"
    assert parsed["DEFAULT"]["caso_tag"] == casoconf.NO_TAG


def test_projects_or_a_tag_is_required(tmp_path):
    with pytest.raises(ValueError, match="projects"):
        _config(tmp_path, project_tag=None)


def test_first_run_starts_at_the_configured_date_and_moves_only_when_told(tmp_path):
    mark = Watermark(tmp_path, datetime.date(2026, 3, 1))
    assert mark.extracted_until() == datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC)
    later = datetime.datetime(2026, 3, 2, 5, tzinfo=datetime.UTC)
    mark.advance(later)
    assert Watermark(tmp_path, datetime.date(2026, 3, 1)).extracted_until() == later


def _fake_caso(tmp_path: Path, log: str, code: int = 0) -> list[str]:
    """A stand-in for the caso-extract binary that prints ``log`` and records its args."""
    script = tmp_path / "fake-caso"
    script.write_text(
        "import os, sys\n"
        f"open({str(tmp_path / 'args')!r}, 'w').write(' '.join(sys.argv[1:]) + ' TZ=' + "
        "os.environ['TZ'])\n"
        f"sys.stderr.write({log!r})\n"
        f"sys.exit({code})\n"
    )
    return [sys.executable, str(script)]


def test_job_passes_the_window_in_utc_and_keeps_it_after_a_failure(tmp_path, capsys):
    now = datetime.datetime(2026, 5, 1, 12, 0, tzinfo=datetime.UTC)
    config = _config(tmp_path, caso_command=_fake_caso(tmp_path, NOVA_DOWN_LOG))
    assert ExtractJob(config, now=now).run() == 1
    args = (tmp_path / "args").read_text()
    assert "--extract-from 2026-01-01T00:00:00+00:00" in args
    assert "--extract-to 2026-05-01T12:00:00+00:00" in args
    assert args.endswith("TZ=UTC")
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("caso-extract failed")
    reason = summary.partition(" -- ")[2]  # one line saying why, for the status page
    assert reason and "\n" not in reason
    assert not (tmp_path / "state" / "fedcloud-watermark.json").exists()
    for path in (tmp_path / "state").rglob("*"):
        assert path.is_dir() or b"s3cret" not in path.read_bytes(), f"password left in {path}"

    ok = _config(tmp_path, caso_command=_fake_caso(tmp_path, OK_LOG))
    assert ExtractJob(ok, now=now).run() == 0
    later = now + datetime.timedelta(hours=1)
    assert ExtractJob(ok, now=later).run() == 0
    assert "--extract-from 2026-05-01T12:00:00+00:00" in (tmp_path / "args").read_text()


def test_both_jobs_read_their_part_of_one_file(tmp_path):
    extract = _config(tmp_path).model_dump(mode="json")
    path = tmp_path / "accounting.json"
    path.write_text(json.dumps({"extract": extract, "send": {"protocol": "stomp"}}))
    settings = config.load(path)
    assert settings.extract == _config(tmp_path)
    assert settings.send.protocol == "stomp"


def test_config_errors_name_the_file_and_the_field(tmp_path):
    path = tmp_path / "accounting.json"
    extract = _config(tmp_path).model_dump(mode="json")
    path.write_text(json.dumps({"extract": extract, "send": {"protocol": "carrier-pigeon"}}))
    with pytest.raises(ConfigError, match=r"accounting.json: send.protocol: Input should be"):
        config.load(path)
    path.write_text(json.dumps({"extract": extract | {"keystone": {}}, "send": {}}))
    with pytest.raises(ConfigError, match=r"extract.keystone: not a known setting"):
        config.load(path)


def test_a_project_without_a_vo_is_reported_but_not_re_extracted(tmp_path, capsys):
    log = OK_LOG + (
        f"{P} WARNING caso.extract.manager [-] No mapping could be found for project 'bbb' "
        "in the Keystone project metadata, please check cASO documentation.\n"
    )
    verdict = judge(0, log)
    assert verdict.problems() == []
    assert verdict.no_vo == {"bbb"}
    config = _config(tmp_path, caso_command=_fake_caso(tmp_path, log))
    assert ExtractJob(config).run() == 0
    captured = capsys.readouterr()
    assert "caso-extract partial" in captured.out
    assert "no VO (VO property) for projects bbb" in captured.err


def test_the_command_line_reports_config_errors_with_exit_2(tmp_path, capsys):
    from fedcloud_accounting.cli import main

    assert main(["send", "--config", str(tmp_path / "missing.json")]) == 2
    assert "missing.json: does not exist" in capsys.readouterr().err
