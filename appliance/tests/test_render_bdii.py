"""Every key of appliance.yaml's ``site`` and ``bdii`` reaches the BDIIs' rendered settings.

Each test writes an appliance.yaml as an operator would, with one key set to
a value other than its default, renders it (``render_all``: the files the
services mount) and reads ``bdii/resource.json`` and ``bdii/site.json`` back
through the loader ``fedcloud-bdii`` uses. The last test of the file runs the
site BDII from a rendered ``site.json`` against real slapd and reads what it
publishes with ldapsearch. ``test_every_key_of_the_sections_has_a_test``
fails when a key is added without a test of its effect.
"""

from __future__ import annotations

import inspect
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fedcloud_appliance import loader, render
from fedcloud_appliance.config import Bdii, Contacts, Site, VoMapping
from fedcloud_appliance.config.bdii import ObjectStore
from fedcloud_appliance.jobs import job_specs
from fedcloud_bdii import config as bdii_config
from fedcloud_bdii import synthetic
from fedcloud_bdii.cli import layout_for
from fedcloud_bdii.convert import Converter
from fedcloud_bdii.slapd import Slapd, connect_updater
from fedcloud_bdii.updater import Updater
from fedcloud_common import settings
from fedcloud_common.services import RENDERED_DIR
from fedcloud_common.settings.bdii import BdiiSettings
from tests.support import ports
from tests.support.applianceconfig import MINIMAL, write_password

SITE = "site: {name: TEST-SITE, hostname: cloud.test}"
# slapd for the end-to-end test; the bdii suite has 41000-41999.
PORTS = range(43000, 43100)
# Keys whose effect is tested in another module: key -> (module, test).
ELSEWHERE = {
    "bdii.vo_map_file": ("test_vomap.py", "test_the_bdii_renders_the_merged_map"),
}

Rendered = Callable[..., tuple[BdiiSettings, BdiiSettings]]


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    write_password(tmp_path)
    return tmp_path


def _write(config_dir: Path, site: str = "", bdii: str = "") -> Path:
    """appliance.yaml with these ``site`` keys and ``bdii`` section (images off)."""
    password = config_dir / "secrets" / "password"
    text = MINIMAL.replace("PASSWORD", str(password)) + "images: {enabled: false}\n"
    if site:
        text = text.replace(SITE, "site:\n" + textwrap.indent(textwrap.dedent(site), "  "))
    if bdii:
        text += "bdii:\n" + textwrap.indent(textwrap.dedent(bdii), "  ")
    path = config_dir / "appliance.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def rendered(config_dir: Path) -> Rendered:
    """(resource, site): the settings both BDIIs load for these sections."""

    def rendered(site: str = "", bdii: str = "") -> tuple[BdiiSettings, BdiiSettings]:
        config = loader.load(_write(config_dir, site, bdii))
        render.render_all(config, config_dir / "rendered")
        out = config_dir / "rendered" / "bdii"
        return bdii_config.load(out / "resource.json"), bdii_config.load(out / "site.json")

    return rendered


def problems(config_dir: Path, site: str = "", bdii: str = "") -> list[str]:
    with pytest.raises(loader.ConfigError) as error:
        loader.load(_write(config_dir, site, bdii))
    return error.value.problems


SITE_KEYS = "name: TEST-SITE\nhostname: cloud.test\n"


# -- site.* --


def test_name_is_the_site_both_bdiis_publish_under(rendered):
    resource, site = rendered(site="name: OTHER-SITE\nhostname: cloud.test\n")
    assert resource.site == site.site == "OTHER-SITE"


def test_hostname_is_where_the_site_bdii_says_it_is_reached(rendered, config_dir):
    _, site = rendered(site="name: TEST-SITE\nhostname: bdii.site.example.org\n")
    assert site.public_address is not None
    assert (site.public_address.host, site.public_address.port) == ("bdii.site.example.org", 2170)
    found = problems(config_dir, site="name: TEST-SITE\nhostname: https://cloud.test/\n")
    assert found == [
        "site.hostname: 'https://cloud.test/' is not a host name; write the name alone "
        "(no scheme, port or path), e.g. 'cloud.example.org'"
    ]


def test_country_is_the_sites_location(rendered, config_dir):
    _, site = rendered()
    assert site.admin_domain.country is None
    _, site = rendered(site=SITE_KEYS + "country: nl\n")
    assert site.admin_domain.country == "NL"
    found = problems(config_dir, site=SITE_KEYS + "country: Netherlands\n")
    assert found == [
        "site.country: 'Netherlands' is not an ISO 3166-1 alpha-2 country code; "
        "write its two letters, e.g. 'NL' for the Netherlands"
    ]
    assert problems(config_dir, site=SITE_KEYS + "country: UK\n") == [
        "site.country: 'UK' is not an ISO 3166-1 alpha-2 country code; "
        "write 'GB' for the United Kingdom"
    ]
    assert problems(config_dir, site=SITE_KEYS + "country: NO\n") == [
        "site.country: False is not a country code; YAML reads a bare NO as false: "
        "quote the code, e.g. 'NO' for Norway"
    ]
    assert rendered(site=SITE_KEYS + "country: 'NO'\n")[1].admin_domain.country == "NO"


def test_description_describes_the_admin_domain(rendered):
    assert rendered()[1].admin_domain.description is None
    _, site = rendered(site=SITE_KEYS + "description: The Test University's cloud\n")
    assert site.admin_domain.description == "The Test University's cloud"


def test_www_is_the_admin_domains_web_page(rendered, config_dir):
    assert rendered()[1].admin_domain.www is None
    _, site = rendered(site=SITE_KEYS + "www: https://cloud.test-university.example\n")
    assert str(site.admin_domain.www) == "https://cloud.test-university.example/"
    (found,) = problems(config_dir, site=SITE_KEYS + "www: cloud.test-university.example\n")
    assert found.startswith("site.www: Input should be a valid URL")


def test_contacts_are_the_sites_contacts(rendered):
    assert rendered()[1].admin_domain.contacts == {}
    _, site = rendered(site=SITE_KEYS + "contacts: {email: ops@test.example}\n")
    assert site.admin_domain.contacts == {"general": "ops@test.example"}


def test_contacts_email_is_the_general_contact(rendered, config_dir):
    _, site = rendered(site=SITE_KEYS + "contacts: {email: cloud-ops@test.example}\n")
    assert site.admin_domain.contacts == {"general": "cloud-ops@test.example"}
    found = problems(config_dir, site=SITE_KEYS + "contacts: {email: demo-at-example}\n")
    assert found == [
        "site.contacts.email: 'demo-at-example' is not an email address; write it as "
        "name@domain, e.g. 'cloud-admin@example.org'"
    ]


def test_contacts_security_email_is_the_security_contact(rendered, config_dir):
    contacts = "contacts: {email: ops@test.example, security_email: csirt@test.example}\n"
    _, site = rendered(site=SITE_KEYS + contacts)
    assert site.admin_domain.contacts == {
        "general": "ops@test.example",
        "security": "csirt@test.example",
    }
    found = problems(config_dir, site=SITE_KEYS + contacts.replace("csirt@", "csirt at "))
    assert found[0].startswith("site.contacts.security_email: 'csirt at test.example' is not")


def test_the_site_keys_reach_only_the_site_bdii(rendered):
    resource, _ = rendered(site=SITE_KEYS + "country: NL\ncontacts: {email: ops@test.example}\n")
    assert resource.admin_domain == BdiiSettings(site="S").admin_domain
    assert resource.public_address is None


# -- bdii.* --


def test_enabled_false_renders_no_bdii_settings_and_no_publish_job(config_dir, rendered):
    rendered()
    config = loader.load(_write(config_dir, bdii="enabled: false\n"))
    render.render_all(config, config_dir / "rendered")
    assert list((config_dir / "rendered").rglob("bdii/*.json")) == []
    assert not (config_dir / "rendered" / "secrets" / "bdii").exists()
    assert "bdii-publish" not in {spec.name for spec in job_specs(config, "1")}


def test_schedule_is_the_bdii_publish_jobs_cron(config_dir):
    config = loader.load(_write(config_dir, bdii="schedule: '5,35 * * * *'\n"))
    (publish,) = [spec for spec in job_specs(config, "1") if spec.name == "bdii-publish"]
    assert publish.schedule == "5,35 * * * *"


def test_openstack_of_bdii_is_used_instead_of_the_shared_credentials(config_dir, rendered):
    resource, site = rendered()
    assert resource.openstack is not None and resource.openstack.username == "fedcloud"
    assert site.openstack is None  # the site BDII reads LDAP only
    secret = config_dir / "secrets" / "bdii-password"
    secret.write_text("bdii-pw\n")
    secret.chmod(0o600)
    resource, _ = rendered(
        bdii=f"""\
        openstack:
          auth_url: https://keystone.bdii.test:5000/v3
          username: bdii-reader
          password_file: {secret}
          project_id: 0123abcd
        """
    )
    assert resource.openstack is not None
    assert (resource.openstack.username, resource.openstack.project_id) == (
        "bdii-reader",
        "0123abcd",
    )
    assert resource.endpoint == "https://keystone.bdii.test:5000/v3"  # Keystone as in GOCDB
    staged = resource.openstack.password_file
    assert staged is not None and staged.parent == Path(RENDERED_DIR) / "secrets" / "bdii"
    in_volume = config_dir / "rendered" / staged.relative_to(RENDERED_DIR)
    assert in_volume.read_text() == "bdii-pw\n"


def test_vos_are_the_shares_the_resource_bdii_publishes(rendered):
    assert rendered()[0].vos == {}
    resource, site = rendered(bdii="vos: {fedcloud.egi.eu: {project: vo-fedcloud}}\n")
    assert resource.vos == {"fedcloud.egi.eu": "vo-fedcloud"}
    assert site.vos == {}


def test_vos_project_is_the_vos_project_by_name_or_id(rendered):
    resource, _ = rendered(bdii="vos:\n  a.vo: {project: vo-a}\n  b.vo: {project: 5a1e6b0c9d}\n")
    assert resource.vos == {"a.vo": "vo-a", "b.vo": "5a1e6b0c9d"}


def test_vos_auth_project_id_is_gone_and_project_takes_the_id(config_dir):
    found = problems(config_dir, bdii="vos: {a.vo: {project: vo-a, auth_project_id: 5a1e6b0c9d}}\n")
    # It was validated and never read; a second project per VO could only
    # disagree with the one images are shared with.
    assert len(found) == 1
    assert found[0].startswith("bdii.vos.a.vo.auth_project_id: not a known key; ")


def test_delete_delay_is_how_long_both_bdiis_keep_vanished_entries(rendered):
    resource, site = rendered()
    assert resource.delete_delay == site.delete_delay == 3600
    resource, site = rendered(bdii="delete_delay: PT10M\n")
    assert resource.delete_delay == site.delete_delay == 600


def test_port_is_the_published_port_not_the_one_slapd_listens_on(rendered):
    resource, site = rendered(bdii="port: 2180\n")
    assert site.public_address is not None and site.public_address.port == 2180
    # Inside their containers both slapds stay on 2170: the site BDII reads the
    # resource BDII there, and compose maps the host's bdii.port to it.
    assert resource.port == site.port == 2170
    assert site.resource_urls == ["ldap://resource-bdii:2170"]


def test_object_store_is_where_the_resource_bdii_uploads_its_json(rendered):
    resource, site = rendered()
    assert resource.object_store is None
    resource, site = rendered(bdii="object_store: {container: cloud-info}\n")
    assert resource.object_store is not None and site.object_store is None


def test_object_store_container_is_the_swift_container(rendered):
    resource, _ = rendered(bdii="object_store: {container: egi-cloud-info}\n")
    assert resource.object_store is not None
    assert resource.object_store.container == "egi-cloud-info"


def test_object_store_object_name_names_the_object_by_site(rendered, tmp_path):
    resource, _ = rendered(bdii="object_store: {container: c}\n")
    assert resource.object_store is not None
    assert resource.object_store.object_name == "{site}/cloud-info.json"
    resource, _ = rendered(bdii="object_store: {container: c, object_name: 'glue/{site}.json'}\n")
    from fedcloud_bdii.cli import object_store

    store = object_store(resource.model_copy(update={"state_dir": tmp_path}), "resource")
    assert store is not None and store.where == "swift:c/glue/TEST-SITE.json"


def test_object_store_storage_url_overrides_the_catalog(rendered):
    url = "https://swift.egi.test:8080/v1/AUTH_0123"
    resource, _ = rendered(bdii=f"object_store: {{container: c, storage_url: '{url}'}}\n")
    assert resource.object_store is not None
    assert str(resource.object_store.storage_url) == url


def test_object_store_openstack_are_the_stores_own_credentials(config_dir, rendered):
    resource, _ = rendered(bdii="object_store: {container: c}\n")
    assert resource.object_store is not None and resource.object_store.openstack is None
    secret = config_dir / "secrets" / "swift-password"
    secret.write_text("swift-pw\n")
    secret.chmod(0o600)
    resource, _ = rendered(
        bdii=f"""\
        object_store:
          container: c
          openstack:
            auth_url: https://keystone.store.test:5000/v3
            username: uploader
            password_file: {secret}
            project_name: cloud-info
        """
    )
    store = resource.object_store
    assert store is not None and store.openstack is not None
    assert store.openstack.username == "uploader"
    staged = store.openstack.password_file
    assert staged is not None and staged.parent == Path(RENDERED_DIR) / "secrets" / "bdii"
    assert (config_dir / "rendered" / staged.relative_to(RENDERED_DIR)).read_text() == "swift-pw\n"


def test_object_store_public_read_can_keep_a_new_container_private(rendered):
    resource, _ = rendered(bdii="object_store: {container: c}\n")
    assert resource.object_store is not None and resource.object_store.public_read
    resource, _ = rendered(bdii="object_store: {container: c, public_read: false}\n")
    assert resource.object_store is not None and not resource.object_store.public_read


def test_object_store_kind_s3_needs_its_keys_and_swift_refuses_them(config_dir, rendered):
    assert rendered(bdii="object_store: {container: c}\n")[0].object_store.kind == "swift"
    found = problems(config_dir, bdii="object_store: {container: c, kind: s3}\n")
    assert len(found) == 1 and "an s3 store also needs: endpoint_url, access_key_id" in found[0]
    found = problems(config_dir, bdii="object_store: {container: c, access_key_id: AK}\n")
    assert "access_key_id are for kind s3" in found[0]


def _s3(config_dir: Path, extra: str = "") -> str:
    secret = config_dir / "secrets" / "s3-secret"
    secret.write_text("s3-secret-value\n")
    secret.chmod(0o600)
    return (
        "object_store:\n  kind: s3\n  container: cloud-info\n"
        "  endpoint_url: https://s3.store.test\n  access_key_id: AKIDEXAMPLE\n"
        f"  secret_access_key_file: {secret}\n{extra}"
    )


def test_object_store_endpoint_url_is_the_s3_endpoint(config_dir, rendered):
    resource, _ = rendered(bdii=_s3(config_dir))
    assert resource.object_store is not None
    assert str(resource.object_store.endpoint_url) == "https://s3.store.test/"
    from fedcloud_bdii.cli import object_store
    from fedcloud_bdii.objectstore import S3Store

    store = object_store(resource.model_copy(update={"state_dir": config_dir}), "resource")
    assert isinstance(store, S3Store) and store.where == "s3:cloud-info/TEST-SITE/cloud-info.json"


def test_object_store_access_key_id_is_the_s3_access_key(config_dir, rendered):
    resource, _ = rendered(bdii=_s3(config_dir))
    assert resource.object_store is not None
    assert resource.object_store.access_key_id == "AKIDEXAMPLE"


def test_object_store_secret_access_key_file_is_staged_for_the_bdii(config_dir, rendered):
    resource, _ = rendered(bdii=_s3(config_dir))
    assert resource.object_store is not None
    staged = resource.object_store.secret_access_key_file
    assert staged is not None and staged.parent == Path(RENDERED_DIR) / "secrets" / "bdii"
    in_volume = config_dir / "rendered" / staged.relative_to(RENDERED_DIR)
    assert in_volume.read_text() == "s3-secret-value\n"
    text = _s3(config_dir)
    (config_dir / "secrets" / "s3-secret").chmod(0o644)  # a secret others can read
    found = problems(config_dir, bdii=text)
    assert any(p.startswith("bdii.object_store.secret_access_key_file") for p in found)


def test_object_store_region_is_what_s3_requests_are_signed_for(config_dir, rendered):
    resource, _ = rendered(bdii=_s3(config_dir))
    assert resource.object_store is not None and resource.object_store.region == "us-east-1"
    resource, _ = rendered(bdii=_s3(config_dir, "  region: eu-west-1\n"))
    assert resource.object_store is not None and resource.object_store.region == "eu-west-1"


def test_every_key_of_the_sections_has_a_test():
    here = sys.modules[__name__]
    tests = [name for name, _ in inspect.getmembers(here, inspect.isfunction)]
    keys = [
        *(f"site.{key}" for key in Site.model_fields),
        *(f"site.contacts.{key}" for key in Contacts.model_fields),
        *(f"bdii.{key}" for key in Bdii.model_fields),
        *(f"bdii.vos.{key}" for key in VoMapping.model_fields),
        *(f"bdii.object_store.{key}" for key in ObjectStore.model_fields),
    ]
    untested = []
    for key in keys:
        if key in ELSEWHERE:
            module, test = ELSEWHERE[key]
            assert f"def {test}(" in (Path(__file__).parent / module).read_text(), key
            continue
        name = key.removeprefix("site.").removeprefix("bdii.").replace(".", "_")
        if not any(test.startswith(f"test_{name}_") for test in tests):
            untested.append(key)
    assert untested == []


# -- end to end: appliance.yaml -> site.json -> fedcloud-bdii aggregate -> slapd --


@pytest.fixture
def slapds() -> Iterator[Callable[[BdiiSettings], BdiiSettings]]:
    """Start slapd for a BDII's settings, moved to a free port and a scratch state dir.

    The directory is 0755: as root, slapd drops to the openldap user.
    """
    root = Path(tempfile.mkdtemp(prefix="bdii-render-test-"))
    root.chmod(0o755)
    started: list[Slapd] = []

    def start(wanted: BdiiSettings) -> BdiiSettings:
        moved = wanted.model_copy(
            update={"state_dir": root / str(len(started)), "port": ports.free_port(PORTS)}
        )
        server = Slapd(layout_for(moved))
        server.start()
        started.append(server)
        return moved

    yield start
    for server in started:
        server.stop()
    shutil.rmtree(root, ignore_errors=True)


def _uri(bdii: BdiiSettings) -> str:
    return f"ldap://127.0.0.1:{bdii.port}"


def _ldapsearch(bdii: BdiiSettings, *args: str) -> str:
    """The real ldapsearch, as an operator runs it against the BDII."""
    return subprocess.run(
        ["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", _uri(bdii), "-b", "o=glue", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_the_site_bdii_publishes_the_site_section_as_glue2(rendered, slapds, config_dir):
    _, rendered_site = rendered(
        site=SITE_KEYS
        + textwrap.dedent("""\
        country: NL
        description: The Test University's cloud
        www: https://cloud.test-university.example
        contacts: {email: ops@test.example, security_email: csirt@test.example}
        """),
        bdii="port: 2180\n",
    )
    resource = slapds(BdiiSettings(site="TEST-SITE"))
    updater = Updater(connect_updater(layout_for(resource)), resource.state_dir, delete_delay=0)
    updater.apply(Converter("TEST-SITE").convert(synthetic.document(flavors=1)))
    # The rendered site.json, with what only the containers have (state volume,
    # the resource-bdii host name) moved to this test's slapds.
    site = slapds(rendered_site.model_copy(update={"resource_urls": [_uri(resource)]}))
    site_json = config_dir / "site-under-test.json"
    settings.write(site, site_json)
    aggregate = subprocess.run(
        [str(Path(sys.executable).parent / "fedcloud-bdii"), "aggregate", "-c", str(site_json)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert aggregate.returncode == 0, aggregate.stdout + aggregate.stderr

    domain = _ldapsearch(site, "(objectClass=GLUE2AdminDomain)")
    assert domain.startswith("dn: GLUE2DomainID=TEST-SITE,o=glue\n")
    assert "GLUE2DomainDescription: The Test University's cloud\n" in domain
    assert "GLUE2DomainWWW: https://cloud.test-university.example/\n" in domain
    location = _ldapsearch(site, "(objectClass=GLUE2Location)", "GLUE2LocationCountry")
    assert location == (
        "dn: GLUE2LocationID=location.TEST-SITE,GLUE2DomainID=TEST-SITE,o=glue\n"
        "GLUE2LocationCountry: NL\n\n"
    )
    for kind, email in (("general", "ops@test.example"), ("security", "csirt@test.example")):
        contact = _ldapsearch(site, f"(GLUE2ContactType={kind})", "GLUE2ContactDetail")
        assert f"GLUE2ContactDetail: mailto:{email}\n" in contact
        assert "GLUE2DomainID=TEST-SITE,o=glue" in contact
    endpoint = _ldapsearch(site, "(GLUE2EndpointInterfaceName=bdii_site)", "GLUE2EndpointURL")
    assert "GLUE2EndpointURL: ldap://cloud.test:2180/GLUE2DomainID=TEST-SITE,o=glue\n" in endpoint
    flavors = _ldapsearch(site, "(objectClass=GLUE2CloudComputingInstanceType)", "1.1")
    assert flavors.count("dn: ") == 1  # the resource BDII's cloud, beside the site's entries
