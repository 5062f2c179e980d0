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
    config = _config(tmp_path, vo_property="egi.eu:VO", record_types=["cloud", "storage"])
    parsed = configparser.ConfigParser(interpolation=None)
    parsed.read_string(casoconf.render(config, "cinder", ["storage"]))
    assert "project_name" not in parsed["keystone_auth"]
    assert "project_id" not in parsed["keystone_auth"]
    assert parsed["keystone_auth"]["password"] == "s3cret"
    assert parsed["DEFAULT"]["vo_property"] == "egi.eu:VO"
    assert parsed["DEFAULT"]["caso_tag"] == "fedcloud"
    assert parsed["DEFAULT"]["extractor"] == "cinder"
    assert parsed["DEFAULT"]["messengers"] == "ssm"
    assert parsed["messenger_ssm"]["record_types"] == "storage"
    assert parsed["ssm"]["output_path"] == str(tmp_path / "spool")


def test_caso_conf_carries_a_sites_accelerator_and_benchmark_sections(tmp_path):
    sections = {"accelerator": {"type_key": "gpu:type"}, "benchmark": {"name_key": "hs23"}}
    parsed = configparser.ConfigParser(interpolation=None)
    parsed.read_string(
        casoconf.render(_config(tmp_path, caso_sections=sections), "nova", ["cloud"])
    )
    assert parsed["accelerator"]["type_key"] == "gpu:type"
    assert parsed["benchmark"]["name_key"] == "hs23"


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
    parsed.read_string(casoconf.render(_config(tmp_path, openstack=openstack), "nova", ["cloud"]))
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
    parsed.read_string(casoconf.render(config, "nova", ["cloud"]))
    assert parsed["DEFAULT"]["projects"] == "p1,p2"
    assert parsed["DEFAULT"]["caso_tag"] == casoconf.NO_TAG


def test_projects_or_a_tag_is_required(tmp_path):
    with pytest.raises(ValueError, match="projects"):
        _config(tmp_path, project_tag=None)


def test_first_run_starts_at_the_configured_date_and_moves_only_when_told(tmp_path):
    mark = Watermark(tmp_path, datetime.date(2026, 3, 1))
    first = datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC)
    assert mark.read(["cloud", "ip"]).until == {"cloud": first, "ip": first}
    assert mark.read(["cloud"]).problem is None
    later = datetime.datetime(2026, 3, 2, 5, tzinfo=datetime.UTC)
    mark.advance({"cloud": later})
    again = Watermark(tmp_path, datetime.date(2026, 3, 1)).read(["cloud", "ip"])
    assert again.until == {"cloud": later, "ip": first}  # each type on its own


NOW = datetime.datetime(2026, 6, 10, 12, 0, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("content", "problem"),
    [("", "is empty"), ("{not json", "is corrupt"), ('{"extracted_until": 5}', "is corrupt")],
)
def test_a_bad_watermark_falls_back_to_the_previous_one(tmp_path, content, problem):
    mark = Watermark(tmp_path, datetime.date(2026, 1, 1), now=NOW)
    one = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)
    mark.advance({"cloud": one})
    mark.advance({"cloud": one + datetime.timedelta(hours=1)})
    mark.path.write_text(content)
    reading = mark.read(["cloud"])
    assert reading.until == {"cloud": one}  # earlier, so safe: nothing skipped
    assert problem in (reading.problem or "") and "previous one" in (reading.problem or "")


def test_a_lost_watermark_restarts_days_back_not_from_the_first_date(tmp_path):
    mark = Watermark(tmp_path, datetime.date(2025, 1, 1), recovery_days=7, now=NOW)
    (tmp_path / "caso").mkdir()
    (tmp_path / "caso" / "lastrun.p1").write_text("2026-06-10 11:00:00+00:00")  # cASO ran
    reading = mark.read(["cloud", "storage"])
    week_ago = NOW - datetime.timedelta(days=7)
    assert reading.until == {"cloud": week_ago, "storage": week_ago}
    assert "is missing though cASO ran before" in (reading.problem or "")
    assert "republish --from" in (reading.problem or "")
    mark.path.write_text("garbage")  # corrupt, and no previous copy
    assert mark.read(["cloud"]).until == {"cloud": week_ago}


def test_a_corrupt_watermark_is_reported_and_the_run_goes_on_from_a_safe_point(tmp_path, capsys):
    state = tmp_path / "state"
    (state / "caso").mkdir(parents=True)
    (state / "caso" / "lastrun.p1").write_text("x")
    (state / "fedcloud-watermark.json").write_text("")  # cASO #146: an empty lastrun
    config = _config(tmp_path, caso_command=_fake_caso(tmp_path, OK_LOG), recovery_days=3)
    assert ExtractJob(config, now=NOW).run() == 0  # no crash, no crash loop
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("caso-extract partial"), summary
    assert "window_from=2026-06-07T12:00:00+00:00" in summary
    assert "is empty: re-extracting from 2026-06-07T12:00:00+00:00" in summary
    assert ExtractJob(config, now=NOW + datetime.timedelta(hours=1)).run() == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("caso-extract ok"), summary  # the next run is clean again
    assert "window_from=2026-06-10T12:00:00+00:00" in summary


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
    marks = json.loads((tmp_path / "state" / "fedcloud-watermark.json").read_text())
    assert marks == {"extracted_until": {"cloud": "2026-01-01T00:00:00+00:00"}}  # not moved
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


def _caso_by_extractor(tmp_path: Path, logs: dict[str, str]) -> list[str]:
    """A stand-in for caso-extract printing the log given for the conf's extractor.

    It appends each run's extractor, record types and window to ``runs``.
    """
    script = tmp_path / "fake-caso-by-extractor"
    script.write_text(
        "import configparser, sys\n"
        "args = sys.argv[1:]\n"
        "conf = configparser.ConfigParser(interpolation=None)\n"
        "conf.read(args[args.index('--config-file') + 1])\n"
        "extractor = conf['DEFAULT']['extractor']\n"
        f"with open({str(tmp_path / 'runs')!r}, 'a') as out:\n"
        "    out.write(' '.join([extractor, conf['messenger_ssm']['record_types'],\n"
        "              args[args.index('--extract-from') + 1],\n"
        "              args[args.index('--extract-to') + 1]]) + '\\n')\n"
        f"sys.stderr.write({logs!r}[extractor])\n"
    )
    return [sys.executable, str(script)]


def test_an_extractor_failing_keeps_only_its_types_window(tmp_path, capsys):
    logs = {"nova": OK_LOG, "neutron": OK_LOG, "cinder": NOVA_DOWN_LOG.replace("nova", "cinder")}
    kinds = ["cloud", "accelerator", "ip", "storage"]
    config = _config(tmp_path, record_types=kinds, caso_command=_caso_by_extractor(tmp_path, logs))
    assert ExtractJob(config, now=NOW).run() == 1
    runs = (tmp_path / "runs").read_text().splitlines()
    start = "2026-01-01T00:00:00+00:00"
    assert runs == [
        f"nova cloud,accelerator {start} 2026-06-10T12:00:00+00:00",
        f"neutron ip {start} 2026-06-10T12:00:00+00:00",
        f"cinder storage {start} 2026-06-10T12:00:00+00:00",
    ]
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("caso-extract partial"), summary
    assert "types_ok=cloud,accelerator,ip types_failed=storage" in summary
    assert "cinder (storage): " in summary
    # the next run: storage from where it stood, the others from the last run's end
    (tmp_path / "runs").unlink()
    later = NOW + datetime.timedelta(hours=1)
    assert ExtractJob(config, now=later).run() == 1
    runs = (tmp_path / "runs").read_text().splitlines()
    assert runs[0].startswith("nova cloud,accelerator 2026-06-10T12:00:00+00:00")
    assert runs[1].startswith("neutron ip 2026-06-10T12:00:00+00:00")
    assert runs[2].startswith(f"cinder storage {start}")


def test_republish_extracts_the_window_asked_and_leaves_the_watermark(tmp_path, capsys):
    from fedcloud_accounting import extract

    logs = {"nova": OK_LOG, "neutron": OK_LOG}
    config = _config(
        tmp_path, record_types=["cloud", "ip"], caso_command=_caso_by_extractor(tmp_path, logs)
    )
    job = ExtractJob(config, now=NOW)
    assert job.run() == 0
    mark = (tmp_path / "state" / "fedcloud-watermark.json").read_text()
    path = tmp_path / "accounting.json"
    path.write_text(json.dumps({"extract": config.model_dump(mode="json"), "send": {}}))
    (tmp_path / "runs").unlink()
    first, last = datetime.date(2026, 3, 1), datetime.date(2026, 3, 31)
    assert extract.republish(path, first, last) == 0
    runs = (tmp_path / "runs").read_text().splitlines()
    window = "2026-03-01T00:00:00+00:00 2026-04-01T00:00:00+00:00"  # March, both ends in
    assert runs == [f"nova cloud {window}", f"neutron ip {window}"]
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("caso-republish ok"), summary
    assert "watermark=" not in summary
    assert (tmp_path / "state" / "fedcloud-watermark.json").read_text() == mark
    # the command line: both dates, or refused
    from fedcloud_accounting.cli import main

    assert (
        main(["republish", "--config", str(path), "--from", "2026-03-01", "--to", "2026-03-02"])
        == 0
    )
    with pytest.raises(SystemExit):
        main(["republish", "--config", str(path), "--from", "2026-03-01"])
    assert (
        main(["republish", "--config", str(path), "--from", "2026-03-05", "--to", "2026-03-01"])
        == 2
    )


def test_a_first_run_that_fails_is_retried_from_the_first_date_not_treated_as_lost(
    tmp_path, capsys
):
    config = _config(tmp_path, caso_command=_fake_caso(tmp_path, NOVA_DOWN_LOG))
    (tmp_path / "state" / "caso").mkdir(parents=True)
    assert ExtractJob(config, now=NOW).run() == 1
    (tmp_path / "state" / "caso" / "lastrun.p1").write_text("x")  # cASO moved its own
    retry = _config(tmp_path, caso_command=_fake_caso(tmp_path, OK_LOG))
    assert ExtractJob(retry, now=NOW).run() == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("caso-extract ok"), summary
    assert "window_from=2026-01-01T00:00:00+00:00" in summary


def test_a_failed_owner_lookup_is_set_apart_not_a_failed_run():
    # what cASO's neutron extractor logs for every run: it looks up user None
    log = OK_LOG + (
        f"{P} ERROR caso.extract.openstack.base [-] 'user': KeyError: 'user'\n"
        f"{P} ERROR caso.extract.openstack.base Traceback (most recent call last):\n"
        f'{P} ERROR caso.extract.openstack.base   File "base.py", line 129, in '
        "_get_keystone_user\n"
        f"{P} ERROR caso.extract.openstack.base KeyError: 'user'\n"
    )
    verdict = judge(0, log)
    assert verdict.problems() == []
    assert verdict.user_lookups == ["'user': KeyError: 'user'"]
    # any other error with a traceback still fails the run
    assert judge(0, NOVA_DOWN_LOG).problems()
