"""Site BDII: aggregates resource BDIIs under GLUE2DomainID=<site>, describes the site
(domain, Location, Contacts, its own endpoint), read-only to all."""

from __future__ import annotations

import json
import subprocess

from fedcloud_bdii import synthetic
from fedcloud_bdii.convert import Converter
from fedcloud_bdii.domain import site_entries
from fedcloud_bdii.publish import EXIT_OK, EXIT_PARTIAL, LdapSource, Publisher
from fedcloud_bdii.slapd import connect_updater
from fedcloud_bdii.updater import Updater
from fedcloud_common.settings.bdii import AdminDomain, BdiiSettings, PublicAddress


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def load_resource(layout, tmp_path, name, doc, site="TEST-SITE"):
    updater = Updater(connect_updater(layout), tmp_path / name, delete_delay=0)
    stats = updater.apply(Converter(site).convert(doc))
    assert stats.failed == 0


def site_job(site_layout, tmp_path, urls):
    updater = Updater(connect_updater(site_layout), tmp_path / "site", delete_delay=0)
    return Publisher("bdii-site", LdapSource(urls, "TEST-SITE"), updater, tmp_path / "site.json")


def second_cloud() -> dict:
    """A second OpenStack region of the same site: other service, endpoint and IDs."""
    text = json.dumps(synthetic.document(vos=1, images_per_vo=2, flavors=1))
    return json.loads(text.replace("cloud.example.org", "region2.example.org"))


def test_site_bdii_serves_every_resource_bdii_under_the_site_domain(
    start_slapd, tmp_path, ldapsearch
):
    first, second, site = start_slapd("r1"), start_slapd("r2"), start_slapd("site")
    load_resource(first, tmp_path, "r1", synthetic.document(vos=2, images_per_vo=3, flavors=2))
    load_resource(second, tmp_path, "r2", second_cloud())
    job = site_job(site, tmp_path, [first.ldap_uri, second.ldap_uri])
    assert job.run() == EXIT_OK

    services = ldapsearch(
        site.ldap_uri, "(objectClass=GLUE2CloudComputingService)", "GLUE2ServiceID"
    )
    assert "GLUE2ServiceID: https://cloud.example.org:5000/v3_cloud.compute" in services
    assert "GLUE2ServiceID: https://region2.example.org:5000/v3_cloud.compute" in services
    everything = ldapsearch(site.ldap_uri, "(objectClass=*)", "1.1")
    dns = [line[4:] for line in everything.splitlines() if line.startswith("dn: ")]
    assert all(dn.endswith("GLUE2DomainID=TEST-SITE,o=glue") or dn == "o=glue" for dn in dns)
    # One domain and one cloud group, not one per resource BDII.
    assert dns.count("GLUE2GroupID=cloud,GLUE2DomainID=TEST-SITE,o=glue") == 1
    images = ldapsearch(site.ldap_uri, "(objectClass=GLUE2CloudComputingImage)", "1.1")
    assert images.count("dn: ") == 6 + 2


def test_entries_published_directly_under_o_glue_move_into_the_site_domain(
    start_slapd, tmp_path, ldapsearch
):
    resource, site = start_slapd("r1"), start_slapd("site")
    updater = Updater(connect_updater(resource), tmp_path / "r1", delete_delay=0)
    updater.ensure_suffix()
    updater.conn.add_s(
        "GLUE2GroupID=cloud,o=glue",
        [("objectClass", [b"GLUE2Group"]), ("GLUE2GroupID", [b"cloud"])],
    )
    assert site_job(site, tmp_path, [resource.ldap_uri]).run() == EXIT_OK
    out = ldapsearch(site.ldap_uri, "(GLUE2GroupID=cloud)", "1.1")
    assert out.strip() == "dn: GLUE2GroupID=cloud,GLUE2DomainID=TEST-SITE,o=glue"


def test_a_changed_flavor_reaches_the_site_bdii_on_its_next_cycle(
    start_slapd, tmp_path, ldapsearch
):
    resource, site = start_slapd("r1"), start_slapd("site")
    load_resource(resource, tmp_path, "r1", synthetic.document(flavors=2))
    job = site_job(site, tmp_path, [resource.ldap_uri])
    job.run()
    load_resource(resource, tmp_path, "r1", synthetic.document(flavors=2, flavor_ram={0: 3072}))
    job.run()
    assert json.loads((tmp_path / "site.json").read_text())["stats"]["modified"] == 1
    out = ldapsearch(
        site.ldap_uri,
        "(GLUE2CloudComputingInstanceTypeID=flavor-0)",
        "GLUE2CloudComputingInstanceTypeRAM",
    )
    assert "GLUE2CloudComputingInstanceTypeRAM: 3072" in out


def test_an_unreachable_resource_bdii_keeps_the_site_data_and_is_reported(
    start_slapd, tmp_path, ldapsearch
):
    resource, site = start_slapd("r1"), start_slapd("site")
    load_resource(resource, tmp_path, "r1", synthetic.document())
    job = site_job(site, tmp_path, [resource.ldap_uri])
    job.run()
    before = ldapsearch(site.ldap_uri)
    job.source.urls = [resource.ldap_uri, "ldap://127.0.0.1:1"]
    # The reachable one still publishes; the cycle is partial and names the other.
    assert job.run() == EXIT_PARTIAL
    assert ldapsearch(site.ldap_uri) == before
    assert "ldap://127.0.0.1:1" in json.loads((tmp_path / "site.json").read_text())["error"]


def test_site_bdii_refuses_anonymous_writes(start_slapd, tmp_path):
    resource, site = start_slapd("r1"), start_slapd("site")
    load_resource(resource, tmp_path, "r1", synthetic.document())
    site_job(site, tmp_path, [resource.ldap_uri]).run()
    ldif = (
        "dn: GLUE2DomainID=TEST-SITE,o=glue\nchangetype: modify\n"
        "replace: GLUE2EntityName\nGLUE2EntityName: pwned\n"
    )
    done = subprocess.run(
        ["ldapmodify", "-x", "-H", site.ldap_uri], input=ldif, capture_output=True, text=True
    )
    assert done.returncode == 8, done.stderr
    done = subprocess.run(
        ["ldapadd", "-x", "-H", site.ldap_uri],
        input="dn: GLUE2GroupID=x,o=glue\nobjectClass: GLUE2Group\nGLUE2GroupID: x\n",
        capture_output=True,
        text=True,
    )
    assert done.returncode == 8, done.stderr


def described_site(**changes) -> BdiiSettings:
    """Settings of a site BDII that describes its site, as the appliance renders them."""
    return BdiiSettings(
        site="TEST-SITE",
        admin_domain=AdminDomain(
            description="A test cloud",
            www="https://www.test-site.example.org",
            country="NL",
            contacts={"general": "ops@test-site.example.org", "security": "csirt@example.org"},
        ),
        public_address=PublicAddress(host="bdii.test-site.example.org", port=2180),
    ).model_copy(update=changes)


def test_the_site_bdii_publishes_its_domain_location_contacts_and_own_endpoint(
    start_slapd, tmp_path, ldapsearch
):
    resource, site = start_slapd("r1"), start_slapd("site")
    load_resource(resource, tmp_path, "r1", synthetic.document())
    updater = Updater(connect_updater(site), tmp_path / "site", delete_delay=0)
    source = LdapSource([resource.ldap_uri], "TEST-SITE", own=site_entries(described_site()))
    assert Publisher("bdii-site", source, updater, tmp_path / "site.json").run() == EXIT_OK

    domain = ldapsearch(site.ldap_uri, "(objectClass=GLUE2AdminDomain)")
    assert domain.count("dn: ") == 1  # the resource BDII's copy merged into the site's own
    assert "dn: GLUE2DomainID=TEST-SITE,o=glue" in domain
    assert "GLUE2DomainDescription: A test cloud" in domain
    assert "GLUE2DomainWWW: https://www.test-site.example.org/" in domain
    location = ldapsearch(site.ldap_uri, "(objectClass=GLUE2Location)")
    assert "dn: GLUE2LocationID=location.TEST-SITE,GLUE2DomainID=TEST-SITE,o=glue" in location
    assert "GLUE2LocationCountry: NL" in location
    assert "GLUE2LocationDomainForeignKey: TEST-SITE" in location
    contacts = ldapsearch(
        site.ldap_uri, "(objectClass=GLUE2Contact)", "GLUE2ContactType", "GLUE2ContactDetail"
    )
    assert sorted(sorted(block.splitlines()[1:]) for block in contacts.split("\n\n") if block) == [
        ["GLUE2ContactDetail: mailto:csirt@example.org", "GLUE2ContactType: security"],
        ["GLUE2ContactDetail: mailto:ops@test-site.example.org", "GLUE2ContactType: general"],
    ]
    endpoint = ldapsearch(site.ldap_uri, "(GLUE2EndpointInterfaceName=bdii_site)")
    assert (
        "GLUE2EndpointURL: ldap://bdii.test-site.example.org:2180/GLUE2DomainID=TEST-SITE,o=glue"
        in endpoint
    )
    service = ldapsearch(site.ldap_uri, "(GLUE2ServiceType=bdii_site)", "GLUE2ServiceID")
    assert "GLUE2ServiceID: bdii.test-site.example.org_bdii_site" in service
    # The cloud is still there beside the site's own entries.
    assert "GLUE2GroupID=cloud" in ldapsearch(site.ldap_uri, "(objectClass=GLUE2Group)", "1.1")


def test_a_site_detail_removed_from_the_settings_leaves_the_site_bdii(
    start_slapd, tmp_path, ldapsearch
):
    site = start_slapd("site")
    updater = Updater(connect_updater(site), tmp_path / "site", delete_delay=0)

    def publish(settings: BdiiSettings) -> None:
        source = LdapSource([], "TEST-SITE", own=site_entries(settings))
        assert Publisher("bdii-site", source, updater, tmp_path / "site.json").run() == EXIT_OK

    publish(described_site())
    publish(
        described_site(
            admin_domain=AdminDomain(contacts={"general": "ops@test-site.example.org"}),
            public_address=None,
        )
    )
    everything = ldapsearch(site.ldap_uri, "(objectClass=*)")
    assert "GLUE2ContactType: general" in everything
    for gone in ("security", "GLUE2Location", "GLUE2DomainWWW", "bdii_site", "A test cloud"):
        assert gone not in everything


def test_the_site_bdii_waits_for_a_resource_bdii_that_starts_after_it(open_tmp):
    """The start race: no failed first cycle while the resource BDII comes up."""
    import threading

    from fedcloud_bdii.cli import wait_for_sources
    from fedcloud_bdii.slapd import Slapd, SlapdLayout
    from tests.support import ports

    # (slapd drops root: its files live in the open directory the fixtures use.)
    late = SlapdLayout(root=open_tmp / "late", port=ports.free_port(range(41500, 41600)))
    server = Slapd(late)
    starter = threading.Timer(1.5, server.start)
    starter.start()
    try:
        assert wait_for_sources([late.ldap_uri], threading.Event(), timeout_s=60)
    finally:
        starter.join()
        server.stop()
    nobody = f"ldap://127.0.0.1:{ports.free_port(range(41600, 41700))}"
    assert not wait_for_sources([nobody], threading.Event(), timeout_s=1)


def infosys_entries(search, uri: str) -> dict[str, dict[str, str]]:
    """o=infosys as an operator reads it: ``ldapsearch -b o=infosys``."""
    out = subprocess.run(
        ["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", uri, "-b", "o=infosys"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    entries = {}
    for block in out.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        entries[lines.pop("dn")] = lines
    return entries


def test_an_unreachable_resource_bdii_among_two_is_served_stale_while_the_other_updates(
    start_slapd, tmp_path, ldapsearch
):
    """Per-source cache: the down one keeps its data (marked stale) for its validity."""
    first, second, site = start_slapd("r1"), start_slapd("r2"), start_slapd("site")
    load_resource(first, tmp_path, "r1", synthetic.document(flavors=2))
    load_resource(second, tmp_path, "r2", second_cloud())
    clock = Clock()
    updater = Updater(connect_updater(site), tmp_path / "site", delete_delay=0, clock=clock)
    source = LdapSource(
        [first.ldap_uri, second.ldap_uri], "TEST-SITE", cache_dir=tmp_path / "cache", clock=clock
    )
    job = Publisher("bdii-site", source, updater, tmp_path / "site.json", clock=clock,
                    hostname="site-bdii.example.org")  # fmt: skip
    assert job.run() == EXIT_OK

    # The second resource BDII goes down; the first changes a flavor.
    next(s for s in start_slapd.servers if s.layout == second).stop()
    load_resource(first, tmp_path, "r1", synthetic.document(flavors=2, flavor_ram={0: 4096}))
    clock.now += 3600
    # A restarted site BDII (new source object) still has the cache, on disk.
    job.source = LdapSource(
        [first.ldap_uri, second.ldap_uri], "TEST-SITE", cache_dir=tmp_path / "cache", clock=clock
    )
    assert job.run() == EXIT_PARTIAL
    status = json.loads((tmp_path / "site.json").read_text())
    assert second.ldap_uri in status["error"] and "stale" in status["error"]
    assert [s["state"] for s in status["sources"]] == ["ok", "stale"]
    assert "GLUE2CloudComputingInstanceTypeRAM: 4096" in ldapsearch(
        site.ldap_uri, "(GLUE2CloudComputingInstanceTypeID=flavor-0)"
    )
    region2 = ldapsearch(site.ldap_uri, "(GLUE2EndpointURL=https://region2.example.org:5000/v3)")
    assert "GLUE2EndpointHealthState: unknown" in region2
    assert f"GLUE2EndpointHealthStateInfo: stale: {second.ldap_uri} unreachable" in region2
    stats = infosys_entries(ldapsearch, site.ldap_uri)
    base = "Hostname=site-bdii.example.org,o=infosys"
    assert stats[base]["objectClass"] == "UpdateStats"
    assert stats[base]["ModifiedEntries"] == "2"  # the flavor, the stale endpoint
    assert stats[f"SourceURL={second.ldap_uri},{base}"]["SourceState"] == "stale"
    assert stats[f"SourceURL={first.ldap_uri},{base}"]["SourceState"] == "ok"

    # Past the data's validity (12 h), its entries leave the site BDII.
    clock.now += 43200
    assert job.run() == EXIT_PARTIAL
    assert "region2" not in ldapsearch(site.ldap_uri, "(objectClass=*)", "1.1")
    assert "cloud.example.org" in ldapsearch(site.ldap_uri, "(objectClass=*)", "1.1")
    stats = infosys_entries(ldapsearch, site.ldap_uri)
    assert stats[f"SourceURL={second.ldap_uri},{base}"]["SourceState"] == "expired"
    assert int(stats[base]["DeletedEntries"]) > 0


def test_o_infosys_holds_the_update_statistics_bdii_operators_read(
    start_slapd, tmp_path, ldapsearch
):
    resource, site = start_slapd("r1"), start_slapd("site")
    load_resource(resource, tmp_path, "r1", synthetic.document(vos=2, images_per_vo=3))
    job = site_job(site, tmp_path, [resource.ldap_uri])
    job.hostname = "site-bdii.example.org"
    assert job.run() == EXIT_OK
    total = json.loads((tmp_path / "site.json").read_text())["stats"]["entries"]
    stats = infosys_entries(ldapsearch, site.ldap_uri)["Hostname=site-bdii.example.org,o=infosys"]
    assert stats["TotalEntries"] == stats["NewEntries"] == str(total)
    for name in ("ModifiedEntries", "DeletedEntries", "FailedAdds", "FailedModifies"):
        assert stats[name] == "0"
    for name in ("UpdateTime", "DBUpdateTime", "ProvidersTime", "ReadTime", "QueryTime"):
        assert stats[name].isdigit()
    load_resource(resource, tmp_path, "r1", synthetic.document(vos=1, images_per_vo=3))
    assert job.run() == EXIT_OK
    stats = infosys_entries(ldapsearch, site.ldap_uri)["Hostname=site-bdii.example.org,o=infosys"]
    assert stats["NewEntries"] == "0" and stats["DeletedEntries"] == "5"
