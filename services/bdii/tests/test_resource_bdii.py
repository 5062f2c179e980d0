"""Resource BDII: provider -> validated entries -> differences applied to a real slapd."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from fedcloud_bdii import synthetic
from fedcloud_bdii.convert import Converter
from fedcloud_bdii.publish import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL, ProviderSource, Publisher
from fedcloud_bdii.slapd import connect_updater
from fedcloud_bdii.updater import Updater
from fedcloud_common.errors import ConfigError
from fedcloud_common.summary import parse_summary


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def provider(tmp_path):
    """A provider command printing whatever document the test last wrote."""
    out = tmp_path / "provider.json"

    def write(doc: object) -> None:
        out.write_text(doc if isinstance(doc, str) else json.dumps(doc))

    write.command = [sys.executable, "-c", f"print(open({str(out)!r}).read())"]
    return write


def publisher(layout, tmp_path, command, delay=0.0, clock=None):
    clock = clock or Clock()
    updater = Updater(connect_updater(layout), tmp_path / "state", delete_delay=delay, clock=clock)
    source = ProviderSource(command, Converter("TEST-SITE"))
    return Publisher("bdii-publish", source, updater, tmp_path / "status.json", clock=clock)


def flavors(search, uri):
    return search(
        uri,
        "(objectClass=GLUE2CloudComputingInstanceType)",
        "GLUE2EntityName",
        "GLUE2CloudComputingInstanceTypeRAM",
    )


def test_first_publish_adds_everything_and_a_second_changes_nothing(
    start_slapd, tmp_path, provider, ldapsearch, capsys
):
    layout = start_slapd()
    provider(synthetic.document(vos=2, images_per_vo=3, flavors=2))
    job = publisher(layout, tmp_path, provider.command)
    assert job.run() == EXIT_OK
    first = json.loads((tmp_path / "status.json").read_text())
    assert first["stats"]["added"] == first["stats"]["entries"] == 2 + 1 + 1 + 1 + 2 + 6 + 2 + 3
    out = ldapsearch(
        layout.ldap_uri,
        "(objectClass=GLUE2CloudComputingImage)",
        "GLUE2CloudComputingImageMarketplaceURL",
    )
    assert (
        "GLUE2CloudComputingImageMarketplaceURL: https://registry.example.org/vo1.example.org/img2:latest"
        in out
    )
    assert out.count("dn: ") == 6

    assert job.run() == EXIT_OK
    second = json.loads((tmp_path / "status.json").read_text())["stats"]
    assert second["unchanged"] == second["entries"]
    assert second["added"] == second["modified"] == second["deleted"] == 0
    summary = parse_summary(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary[:2] == ("bdii-publish", "ok") and summary[2]["unchanged"] == str(
        second["entries"]
    )


def test_a_changed_flavor_is_one_modify_and_shows_in_ldapsearch(
    start_slapd, tmp_path, provider, ldapsearch
):
    layout = start_slapd()
    provider(synthetic.document(flavors=2))
    job = publisher(layout, tmp_path, provider.command)
    job.run()
    provider(synthetic.document(flavors=2, flavor_ram={1: 8192}))
    assert job.run() == EXIT_OK
    stats = json.loads((tmp_path / "status.json").read_text())["stats"]
    assert stats["modified"] == 1 and stats["added"] == stats["deleted"] == 0
    out = flavors(ldapsearch, layout.ldap_uri)
    assert "GLUE2EntityName: m1.f1\nGLUE2CloudComputingInstanceTypeRAM: 8192" in out


def test_vanished_entries_wait_for_the_delete_delay(start_slapd, tmp_path, provider, ldapsearch):
    layout = start_slapd()
    clock = Clock()
    provider(synthetic.document(flavors=3))
    job = publisher(layout, tmp_path, provider.command, delay=600, clock=clock)
    job.run()
    provider(synthetic.document(flavors=2))
    clock.now += 60
    job.run()
    status = json.loads((tmp_path / "status.json").read_text())["stats"]
    assert status["delayed"] == 1 and status["deleted"] == 0
    assert "m1.f2" in flavors(ldapsearch, layout.ldap_uri)
    clock.now += 600
    job.run()
    status = json.loads((tmp_path / "status.json").read_text())["stats"]
    assert status["delayed"] == 0 and status["deleted"] == 1
    assert "m1.f2" not in flavors(ldapsearch, layout.ldap_uri)


def test_an_entry_that_comes_back_is_no_longer_pending(start_slapd, tmp_path, provider):
    layout = start_slapd()
    clock = Clock()
    provider(synthetic.document(flavors=3))
    job = publisher(layout, tmp_path, provider.command, delay=600, clock=clock)
    job.run()
    provider(synthetic.document(flavors=2))
    job.run()
    provider(synthetic.document(flavors=3))
    clock.now += 3600
    job.run()
    stats = json.loads((tmp_path / "status.json").read_text())["stats"]
    assert stats["delayed"] == stats["deleted"] == 0


@pytest.mark.parametrize(
    ("bad_output", "reason"),
    [
        ('{"CloudComputingService": [', "not JSON"),
        (json.dumps({"Share": []}), "exactly one CloudComputingService"),
    ],
)
def test_malformed_provider_output_leaves_the_tree_untouched(
    start_slapd, tmp_path, provider, ldapsearch, bad_output, reason
):
    layout = start_slapd()
    provider(synthetic.document())
    job = publisher(layout, tmp_path, provider.command)
    job.run()
    before = ldapsearch(layout.ldap_uri)
    provider(bad_output)
    assert job.run() == EXIT_FAILED
    assert ldapsearch(layout.ldap_uri) == before
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["outcome"] == "failed" and reason in status["error"]


def test_a_crashing_provider_keeps_the_last_good_data_and_is_reported(
    start_slapd, tmp_path, provider, ldapsearch, capsys
):
    layout = start_slapd()
    provider(synthetic.document())
    job = publisher(layout, tmp_path, provider.command)
    job.run()
    before = ldapsearch(layout.ldap_uri)
    job.source.command = [sys.executable, "-c", "raise SystemExit('keystone said no')"]
    assert job.run() == EXIT_FAILED
    assert ldapsearch(layout.ldap_uri) == before
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["outcome"] == "failed"
    assert "exit status 1" in status["error"] and "keystone said no" in status["error"]
    assert status["consecutive_failures"] == 1 and status["last_success"]
    # Said once, in the summary line, with the reason (not a second ERROR line).
    printed = capsys.readouterr().out.strip().splitlines()
    (failed,) = [line for line in printed if " failed " in line]
    assert "-- provider run failed, last good data kept: exit status 1" in failed
    assert "keystone said no" in failed


def test_a_provider_that_hangs_is_killed_at_the_timeout(start_slapd, tmp_path):
    layout = start_slapd()
    job = publisher(layout, tmp_path, ["sleep", "30"])
    job.source.timeout = 0.5
    assert job.run() == EXIT_FAILED
    assert "timed out" in json.loads((tmp_path / "status.json").read_text())["error"]


def test_anonymous_writes_are_refused(start_slapd, tmp_path, provider):
    layout = start_slapd()
    provider(synthetic.document())
    publisher(layout, tmp_path, provider.command).run()
    dn = "GLUE2DomainID=TEST-SITE,o=glue"
    for tool, ldif in [
        ("ldapadd", "dn: GLUE2GroupID=evil,o=glue\nobjectClass: GLUE2Group\nGLUE2GroupID: evil\n"),
        (
            "ldapmodify",
            f"dn: {dn}\nchangetype: modify\nreplace: GLUE2EntityName\nGLUE2EntityName: pwned\n",
        ),
        ("ldapdelete", None),
    ]:
        args = [tool, "-x", "-H", layout.ldap_uri]
        done = subprocess.run(
            args + ([dn] if ldif is None else []), input=ldif or "", capture_output=True, text=True
        )
        assert done.returncode == 8, (tool, done.stderr)  # strongerAuthRequired
        assert "Strong(er) authentication required" in done.stderr
    # Nor can anyone bind as the rootdn over the network: it has no password.
    done = subprocess.run(
        ["ldapwhoami", "-x", "-H", layout.ldap_uri, "-D", "cn=updater,o=glue", "-w", "guess"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 49  # invalidCredentials


def test_the_database_holds_more_than_the_default_mdb_map(
    start_slapd, tmp_path, provider, ldapsearch
):
    """Stock slapd fills its 10 MiB map at ~8,300 GLUE entries; 12k must fit."""
    layout = start_slapd()
    provider(synthetic.document(vos=4, images_per_vo=3000, flavors=10))
    job = publisher(layout, tmp_path, provider.command)
    assert job.run() == EXIT_OK
    stats = json.loads((tmp_path / "status.json").read_text())["stats"]
    assert stats["entries"] > 12000 and stats["failed"] == 0
    out = ldapsearch(layout.ldap_uri, "(objectClass=GLUE2CloudComputingImage)", "1.1")
    assert out.count("dn: ") == 12000


def test_the_updater_validates_what_it_writes_before_writing_anything(
    start_slapd, tmp_path, provider, ldapsearch
):
    """With conversion-time validation off (the fast path), the Updater still gates writes."""
    layout = start_slapd()
    provider(synthetic.document(flavors=2))
    job = publisher(layout, tmp_path, provider.command)
    job.source.converter = Converter("TEST-SITE", validate=False)
    assert job.run() == EXIT_OK
    before = ldapsearch(layout.ldap_uri)
    bad = synthetic.document(flavors=2, images_per_vo=4)  # new images would be added...
    for flavor in bad["CloudComputingInstanceType"]:
        flavor["RAM"] = "lots"  # ...but one changed entry is invalid
    provider(bad)
    assert job.run() == EXIT_FAILED
    assert ldapsearch(layout.ldap_uri) == before
    assert "must be an integer" in json.loads((tmp_path / "status.json").read_text())["error"]


def test_a_cycle_rereads_the_tree_when_someone_else_wrote_since(start_slapd, tmp_path):
    layout = start_slapd()
    first = Updater(connect_updater(layout), tmp_path / "a", delete_delay=0)
    other = Updater(connect_updater(layout), tmp_path / "b", delete_delay=0)
    small = Converter("TEST-SITE").convert(synthetic.document(flavors=2))
    changed = Converter("TEST-SITE").convert(synthetic.document(flavors=2, flavor_ram={0: 512}))
    assert first.apply(small).added == len(small)
    assert first.apply(small).unchanged == len(small)  # from its remembered view
    assert other.apply(changed).modified == 1
    # first's remembered view is stale now; it must notice and put RAM back.
    assert first.apply(small).modified == 1
    (flavor0,) = [a for dn, a in first.current().items() if "flavor-0" in dn]
    assert flavor0["GLUE2CloudComputingInstanceTypeRAM"] == [b"1024"]


def test_a_new_creation_time_alone_waits_until_half_the_validity(
    start_slapd, tmp_path, provider, ldapsearch
):
    """cloud-info-provider restamps everything each run; that alone must not rewrite the tree."""
    layout = start_slapd()
    clock = Clock()
    clock.now = datetime(2026, 11, 22, tzinfo=UTC).timestamp()
    stamp = lambda hours: (datetime(2026, 11, 22, tzinfo=UTC) + timedelta(hours=hours)).isoformat()  # noqa: E731
    job = publisher(layout, tmp_path, provider.command, clock=clock)
    provider(synthetic.document(flavors=2, stamp=stamp(0)))
    job.run()
    clock.now += 1800
    provider(synthetic.document(flavors=2, stamp=stamp(0.5)))
    job.run()
    stats = json.loads((tmp_path / "status.json").read_text())["stats"]
    assert stats["modified"] == 0 and stats["deferred"] == stats["entries"] - 2
    assert f"GLUE2EntityCreationTime: {stamp(0)}" in ldapsearch(
        layout.ldap_uri, "(GLUE2ServiceID=*)"
    )
    # A real change is written at once, with its new time.
    provider(synthetic.document(flavors=2, stamp=stamp(0.5), flavor_ram={0: 2048}))
    job.run()
    stats = json.loads((tmp_path / "status.json").read_text())["stats"]
    assert stats["modified"] == 1
    flavor = ldapsearch(layout.ldap_uri, "(GLUE2CloudComputingInstanceTypeID=flavor-0)")
    assert f"GLUE2EntityCreationTime: {stamp(0.5)}" in flavor
    # Six hours on (half of the 12 h Validity) every entry gets its new time.
    clock.now += 6 * 3600
    provider(synthetic.document(flavors=2, stamp=stamp(6.5), flavor_ram={0: 2048}))
    job.run()
    stats = json.loads((tmp_path / "status.json").read_text())["stats"]
    assert stats["deferred"] == 0 and stats["modified"] == stats["entries"] - 2
    assert f"GLUE2EntityCreationTime: {stamp(6.5)}" in ldapsearch(
        layout.ldap_uri, "(GLUE2ServiceID=*)"
    )


def test_a_removed_vo_takes_its_share_policy_and_images_with_it(
    start_slapd, tmp_path, provider, ldapsearch
):
    layout = start_slapd()
    provider(synthetic.document(vos=2, images_per_vo=3, flavors=2))
    job = publisher(layout, tmp_path, provider.command)
    job.run()
    provider(synthetic.document(vos=1, images_per_vo=3, flavors=2))
    assert job.run() == EXIT_OK
    stats = json.loads((tmp_path / "status.json").read_text())["stats"]
    # The share, its mapping policy (a child of the share) and the VO's 3 images.
    assert stats["deleted"] == 5 and stats["failed"] == 0
    out = ldapsearch(layout.ldap_uri, "(|(GLUE2ShareID=*)(GLUE2PolicyRule=VO:vo1.example.org))")
    assert "vo1.example.org" not in out and "vo0.example.org" in out
    flavors = ldapsearch(layout.ldap_uri, "(GLUE2CloudComputingInstanceTypeID=flavor-0)")
    assert "vo1.example.org" not in flavors  # its share dropped from the foreign keys


def test_a_vo_project_the_user_cannot_see_fails_the_cycle_and_keeps_the_data(
    start_slapd, tmp_path, provider, ldapsearch
):
    """A project the appliance's user has no role in (resolve_projects' ConfigError,
    found per cycle from Keystone) fails that cycle, not the BDII's serving loop."""
    layout = start_slapd()
    provider(synthetic.document())
    job = publisher(layout, tmp_path, provider.command)
    assert job.run() == EXIT_OK
    before = ldapsearch(layout.ldap_uri)

    def unknown_project() -> dict:
        raise ConfigError(where="vos", problem="project 'vo-gone' is not one the user has")

    job.source = unknown_project
    assert job.run() == EXIT_FAILED
    assert ldapsearch(layout.ldap_uri) == before
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["outcome"] == "failed" and "vo-gone" in status["error"]


def test_an_unchanged_provider_output_is_not_converted_again(
    start_slapd, tmp_path, provider, monkeypatch
):
    """The fingerprint skip: same JSON, same tree -> no conversion, no tree read."""
    layout = start_slapd()
    provider(synthetic.document(flavors=2))
    job = publisher(layout, tmp_path, provider.command)
    assert job.run() == EXIT_OK
    converted = []
    real = Converter.convert_text
    monkeypatch.setattr(
        Converter, "convert_text", lambda self, text: converted.append(1) or real(self, text)
    )
    assert job.run() == EXIT_OK
    stats = json.loads((tmp_path / "status.json").read_text())["stats"]
    assert stats["skipped"] == 1 and stats["unchanged"] == stats["entries"] and not converted
    # Someone else changed the tree: the same input is applied again, and repairs it.
    other = Updater(connect_updater(layout), tmp_path / "other", delete_delay=0)
    other.apply(Converter("TEST-SITE").convert(synthetic.document(flavors=2, flavor_ram={0: 64})))
    assert job.run() == EXIT_OK
    stats = json.loads((tmp_path / "status.json").read_text())["stats"]
    assert stats["skipped"] == 0 and stats["modified"] == 1 and converted


def test_an_unchanged_input_is_applied_again_once_deferred_work_is_due(
    start_slapd, tmp_path, provider, ldapsearch
):
    """A skip never hides a delayed deletion that has become due."""
    layout = start_slapd()
    clock = Clock()
    provider(synthetic.document(flavors=3))
    job = publisher(layout, tmp_path, provider.command, delay=600, clock=clock)
    job.run()
    provider(synthetic.document(flavors=2))
    job.run()
    clock.now += 60
    job.run()  # same input, deletion not yet due: skipped
    stats = json.loads((tmp_path / "status.json").read_text())["stats"]
    assert stats["skipped"] == 1 and stats["delayed"] == 1
    clock.now += 600
    job.run()  # same input again, but now the deletion is due
    stats = json.loads((tmp_path / "status.json").read_text())["stats"]
    assert stats["skipped"] == 0 and stats["deleted"] == 1
    assert "m1.f2" not in flavors(ldapsearch, layout.ldap_uri)


def test_pipelined_writes_count_each_failure(resource, ldapsearch):
    """Many requests in flight: a rejected one is counted, the others land."""
    layout, updater = resource
    entries = Converter("TEST-SITE").convert(synthetic.document(vos=1, images_per_vo=200))
    stats = updater.apply(entries)
    assert stats.added == len(entries) and stats.failed == 0
    again = Converter("TEST-SITE").convert(
        synthetic.document(vos=1, images_per_vo=200, stamp="2026-11-23T00:00:00+00:00")
    )
    # slapd refuses one modify (a value its schema syntax rejects, past our validator).
    bad = next(dn for dn in again if "img-0-7," in dn)
    updater.schema.validate = lambda *a, **k: None  # type: ignore[method-assign]
    again[bad]["GLUE2CloudComputingImageMinRAM"] = [b"not-a-number"]
    stats = updater.apply(again)
    assert stats.failed == 1 and stats.modified == len(again) - 3  # domain, group, bad
    assert "2026-11-23" in ldapsearch(layout.ldap_uri, "(GLUE2CloudComputingImageID=img-0-199)")


def test_a_failed_provider_on_an_unhealthy_cloud_republishes_the_last_good_data_with_that_health(
    start_slapd, tmp_path, provider, ldapsearch
):
    """The provider usually fails because the cloud is down: say so, do not keep "ok"."""
    from fedcloud_bdii.health import Health

    layout = start_slapd()
    verdict = Health("ok", "Keystone, Nova and Glance answer and authenticate")
    provider(synthetic.document(flavors=2))
    job = publisher(layout, tmp_path, provider.command)
    job.source.probe = lambda: verdict
    job.source.last_good = tmp_path / "last-good.json"
    assert job.run() == EXIT_OK
    endpoint = "(objectClass=GLUE2CloudComputingEndpoint)"
    assert "GLUE2EndpointHealthState: ok" in ldapsearch(layout.ldap_uri, endpoint)

    job.source.command = [sys.executable, "-c", "raise SystemExit('nova: connection refused')"]
    verdict = Health("critical", "Nova does not answer: ConnectTimeout")
    assert job.run() == EXIT_PARTIAL
    out = ldapsearch(layout.ldap_uri, endpoint)
    assert "GLUE2EndpointHealthState: critical" in out
    assert "GLUE2EndpointHealthStateInfo: Nova does not answer: ConnectTimeout" in out
    status = json.loads((tmp_path / "status.json").read_text())
    assert (
        "nova: connection refused" in status["error"] and "HealthState critical" in status["error"]
    )

    # A failing provider on a healthy cloud is a plain failure: nothing is rewritten.
    verdict = Health("ok", "Keystone, Nova and Glance answer and authenticate")
    before = ldapsearch(layout.ldap_uri)
    assert job.run() == EXIT_FAILED
    assert ldapsearch(layout.ldap_uri) == before


def test_a_keystone_that_does_not_answer_makes_the_endpoint_critical(tmp_path):
    from fedcloud_bdii.health import probe
    from fedcloud_common.openstack import Credentials

    password = tmp_path / "password"
    password.write_text("secret\n")
    password.chmod(0o600)
    nobody = Credentials(
        auth_url="http://127.0.0.1:9/v3", username="fedcloud", password_file=password,
        project_name="fedcloud-ops", timeout_s=3,
    )  # fmt: skip
    verdict = probe(nobody)
    assert verdict.state == "critical"
    assert verdict.info.startswith("Keystone does not authenticate: ")
    assert "secret" not in verdict.info
