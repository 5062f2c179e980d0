"""Faults of the information system: the provider, the resource BDII, the site BDII.

Real slapd instances (the BDII tests' ``start_slapd``), read back with the
real ``ldapsearch``. The provider is a command printing a document, as
cloud-info-provider does; each case breaks it and checks the BDII still
serves the last good data and the failure is in ``status.json``'s ``error``
and in the run's summary line.
"""

from __future__ import annotations

import json
import sys

import pytest

from fedcloud_bdii import synthetic
from fedcloud_bdii.convert import Converter
from fedcloud_bdii.publish import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PARTIAL,
    LdapSource,
    ProviderSource,
    Publisher,
)
from fedcloud_bdii.slapd import connect_updater
from fedcloud_bdii.updater import Updater
from fedcloud_common.summary import parse_summary


@pytest.fixture
def published(start_slapd, ldapsearch, tmp_path, capsys):
    """A resource BDII holding a good publish; (job, layout, what it served)."""
    good = tmp_path / "provider.json"
    good.write_text(json.dumps(synthetic.document()))
    layout = start_slapd()
    updater = Updater(connect_updater(layout), tmp_path / "state", delete_delay=0)
    command = [sys.executable, "-c", f"print(open({str(good)!r}).read())"]
    job = Publisher("bdii-publish", ProviderSource(command, Converter("TEST-SITE")), updater,
                    tmp_path / "status.json")  # fmt: skip
    assert job.run() == EXIT_OK
    served = ldapsearch(layout.ldap_uri)
    assert "GLUE2CloudComputingInstanceType" in served
    capsys.readouterr()
    return job, layout, served


def _provider(tmp_path, output: str, code: int = 0) -> list[str]:
    script = tmp_path / "broken-provider.py"
    script.write_text(f"import sys\nsys.stdout.write({output!r})\nsys.exit({code})\n")
    return [sys.executable, str(script)]


def _error(tmp_path, outcome: str = "failed") -> str:
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["outcome"] == outcome and status["last_success"]
    return status["error"]


def test_a_crashing_provider_keeps_the_last_good_data_and_status_json_says_why(
    published, ldapsearch, tmp_path
):
    job, layout, served = published
    job.source.command = [sys.executable, "-c", "raise SystemExit('keystone said no')"]
    assert job.run() == EXIT_FAILED
    assert ldapsearch(layout.ldap_uri) == served
    assert "keystone said no" in _error(tmp_path)


@pytest.mark.parametrize(
    ("output", "says"),
    [
        ("{not json", "JSON"),
        (json.dumps({"Share": []}), "exactly one CloudComputingService"),
    ],
    ids=["not-json", "no-compute-service"],
)
def test_invalid_provider_output_keeps_the_last_good_data_and_says_what_is_invalid(
    published, ldapsearch, tmp_path, output, says
):
    job, layout, served = published
    job.source.command = _provider(tmp_path, output)
    assert job.run() == EXIT_FAILED
    assert ldapsearch(layout.ldap_uri) == served  # nothing half-applied
    assert says in _error(tmp_path)


def test_a_hanging_provider_is_killed_at_its_timeout_and_the_last_good_data_kept(
    published, ldapsearch, tmp_path
):
    job, layout, served = published
    job.source.command = ["sleep", "60"]
    job.source.timeout = 1
    assert job.run() == EXIT_FAILED
    assert ldapsearch(layout.ldap_uri) == served
    assert "timed out" in _error(tmp_path)


def test_a_provider_that_empties_the_cloud_is_refused_not_published(
    published, ldapsearch, tmp_path
):
    """An empty document (Keystone answered, nothing listed) must not wipe the BDII."""
    job, layout, served = published
    job.source.command = _provider(tmp_path, "{}")
    assert job.run() == EXIT_FAILED
    assert ldapsearch(layout.ldap_uri) == served
    assert _error(tmp_path)


def test_an_unreachable_resource_bdii_keeps_the_site_bdiis_data_and_names_it(
    start_slapd, ldapsearch, tmp_path
):
    resource, site = start_slapd("resource"), start_slapd("site")
    Updater(connect_updater(resource), tmp_path / "r", delete_delay=0).apply(
        Converter("TEST-SITE").convert(synthetic.document())
    )
    updater = Updater(connect_updater(site), tmp_path / "site", delete_delay=0)
    job = Publisher("bdii-site", LdapSource([resource.ldap_uri], "TEST-SITE"), updater,
                    tmp_path / "status.json")  # fmt: skip
    assert job.run() == EXIT_OK
    served = ldapsearch(site.ldap_uri)
    job.source.urls = [resource.ldap_uri, "ldap://127.0.0.1:1"]
    # The reachable one still publishes; the cycle is partial and names the other.
    assert job.run() == EXIT_PARTIAL
    assert ldapsearch(site.ldap_uri) == served
    assert "ldap://127.0.0.1:1" in _error(tmp_path, "partial")


def test_a_failed_publish_keeps_the_data_and_names_its_reason_in_the_summary_line(
    published, ldapsearch, tmp_path, capsys
):
    job, layout, served = published
    job.source.command = [sys.executable, "-c", "raise SystemExit('keystone said no')"]
    assert job.run() == EXIT_FAILED
    assert ldapsearch(layout.ldap_uri) == served
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert parse_summary(line)[1] == "failed"
    assert "keystone said no" in line.partition(" -- ")[2], line
