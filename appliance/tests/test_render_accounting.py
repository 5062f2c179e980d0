"""Every ``accounting`` key of appliance.yaml, and its effect on the jobs.

Each test writes an appliance.yaml, renders the accounting settings the
way ``render_all`` does (``render/accounting.py``, written with
``fedcloud_common.settings.write``) and reads them back the way the jobs do
(``fedcloud_accounting.config.load``), then checks the key's value arrived.
Schedules become the jobs' cron (``jobs.py``). What the settings then do
against real parts is tested in services/accounting/tests: real cASO
against the demo cloud (test_demo_cloud.py), the AMS stand-in
(test_send.py), a RabbitMQ broker over STOMP (test_stomp.py).

``test_every_key_has_a_test_of_its_effect`` fails when a key is added to
the section without a test here.
"""

from __future__ import annotations

import datetime
import os
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from fedcloud_accounting import config as accounting_config
from fedcloud_appliance import loader, render
from fedcloud_appliance.config import Accounting, ApplianceConfig
from fedcloud_appliance.jobs import job_specs
from fedcloud_appliance.render.accounting import accounting
from fedcloud_appliance.render.stage import stager
from fedcloud_common import settings
from fedcloud_common.services import RENDERED_DIR, by_section
from fedcloud_common.settings.accounting import AccountingSettings
from tests.support.applianceconfig import MINIMAL, write_password

UID = by_section("accounting").uid
# What accounting needs to be enabled at all; each test adds its key.
ENABLED = """
accounting:
  caso: {project_tag: fedcloud, start_date: 2026-01-01}
"""
COVERED: set[str] = set()


def covers(*keys: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a test as the proof of ``keys``' effect (dotted under ``accounting``)."""
    COVERED.update(keys)
    return lambda test: test


class Site:
    """A config directory with its secrets, as an operator writes it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.password = write_password(root)
        self.out = root / "rendered"

    def secret(self, name: str, text: str = "") -> Path:
        path = self.root / "secrets" / name
        path.write_text(text or f"{name}-value\n")
        os.chmod(path, 0o600)
        return path

    def config(self, text: str) -> ApplianceConfig:
        path = self.root / "appliance.yaml"
        path.write_text(MINIMAL.replace("PASSWORD", str(self.password)) + textwrap.dedent(text))
        # check_files would look for the host certificate in /etc/grid-security
        return loader.load(path, check_files=False)

    def render(self, text: str) -> AccountingSettings:
        """The settings as the jobs read them, rendered from ``text``."""
        built = accounting(self.config(text), stager(self.out / "secrets" / "accounting", UID))
        settings.write(built, self.out / "accounting.json")
        return accounting_config.load(self.out / "accounting.json")

    def staged(self, container_path: Path | None) -> Path:
        """The staged copy a container path names, checked to be the job user's alone."""
        assert container_path is not None
        assert str(container_path).startswith(f"{RENDERED_DIR}/secrets/accounting/")
        path = self.out / Path(container_path).relative_to(RENDERED_DIR)
        assert (path.stat().st_uid, path.stat().st_mode & 0o777) == (UID, 0o400)
        return path

    def refused(self, text: str) -> str:
        with pytest.raises(loader.ConfigError) as error:
            self.config(text)
        return "\n".join(error.value.problems)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path)


def _sender(lines: str) -> str:
    return ENABLED + "  sender:\n" + textwrap.indent(textwrap.dedent(lines), "    ")


# --- enabled and credentials ---------------------------------------------------------


@covers("enabled")
def test_enabled_renders_the_file_and_schedules_both_jobs(site):
    others_off = "images: {enabled: false}\nbdii: {enabled: false}\n"
    on = site.config(ENABLED + others_off)
    assert render.render_all(on, site.out) == [site.out / "accounting.json"]
    assert {s.name for s in job_specs(on, "1")} == {"caso-extract", "apel-send"}
    off = site.config(ENABLED + "  enabled: false\n" + others_off)
    assert render.render_all(off, site.out) == []
    assert not (site.out / "accounting.json").exists()
    assert not (site.out / "secrets" / "accounting").exists()
    assert job_specs(off, "1") == []


@covers("openstack")
def test_own_credentials_replace_the_shared_ones_for_caso(site):
    shared = site.render(ENABLED).extract.openstack
    assert (shared.username, shared.project_name) == ("fedcloud", "ops")
    site.secret("accounting-password", "acct-secret\n")
    own = site.render(
        ENABLED
        + f"""\
  openstack:
    auth_url: https://keystone.test:5000/v3
    username: accounting
    password_file: {site.root}/secrets/accounting-password
    project_name: accounting-ops
    region: RegionTwo
    timeout_s: 12
"""
    ).extract.openstack
    assert (own.username, own.region, own.timeout_s) == ("accounting", "RegionTwo", 12)
    assert site.staged(own.password_file).read_text() == "acct-secret\n"


def test_application_credentials_are_refused_for_caso(site):
    site.secret("appcred")
    text = (
        ENABLED
        + f"""\
  openstack:
    auth_url: https://keystone.test:5000/v3
    application_credential_id: abc
    application_credential_secret_file: {site.root}/secrets/appcred
"""
    )
    assert "cASO authenticates with username + password_file only" in site.refused(text)


# --- caso ----------------------------------------------------------------------------


@covers("caso.schedule")
def test_caso_schedule_is_the_extract_jobs_cron(site):
    config = site.config(ENABLED.replace("{project_tag", "{schedule: '15 */2 * * *', project_tag"))
    specs = {s.name: s for s in job_specs(config, "1")}
    assert specs["caso-extract"].schedule == "15 */2 * * *"
    assert specs["apel-send"].schedule == "0 */6 * * *"


@covers("caso.record_types")
def test_record_types_are_what_caso_extracts_one_run_per_extractor(site):
    assert site.render(ENABLED).extract.record_types == ["cloud"]
    text = ENABLED.replace("{project_tag", "{record_types: [cloud, ip, accelerator], project_tag")
    extract = site.render(text).extract
    assert extract.record_types == ["cloud", "ip", "accelerator"]
    assert extract.extractors == {"nova": ["cloud", "accelerator"], "neutron": ["ip"]}
    assert "caso.record_types" in site.refused(text.replace("ip,", "ipv4,"))
    refused = site.refused(text.replace("ip,", "energy,"))
    assert "caso.record_types" in refused and "cannot write energy records" in refused
    # what each type's run does: services/accounting/tests/test_extract.py and test_demo_cloud.py


CASO_CONF = """\
[DEFAULT]
site_name = TEST-SITE
projects = p-one, p-two
caso_tag = egi-accounted
vo_property = egi.eu:VO
extractor = nova,neutron
messengers = ssm

[messenger_ssm]
record_types = cloud,ip

[accelerator]
type_key = gpu:type
model_key = gpu:model

[keystone_auth]
auth_type = password
password = never-read
"""


@covers("caso.conf_file")
def test_a_sites_caso_conf_fills_what_appliance_yaml_leaves_unset(site):
    conf = site.root / "caso.conf"
    conf.write_text(CASO_CONF)
    text = f"""
accounting:
  caso: {{conf_file: {conf}, start_date: 2026-01-01}}
"""
    extract = site.render(text).extract
    assert extract.projects == ["p-one", "p-two"]
    assert extract.project_tag == "egi-accounted"
    assert extract.vo_property == "egi.eu:VO"
    assert extract.record_types == ["cloud", "ip"]  # nova+neutron, as messenger_ssm says
    accelerator = {"type_key": "gpu:type", "model_key": "gpu:model"}
    assert extract.caso_sections == {"accelerator": accelerator}  # into caso.conf: test_extract
    assert "never-read" not in (site.out / "accounting.json").read_text()  # keystone_auth: ours
    # appliance.yaml wins where it speaks
    both = text.replace("{conf_file", "{vo_property: VO, record_types: [cloud], conf_file")
    extract = site.render(both).extract
    assert (extract.vo_property, extract.record_types) == ("VO", ["cloud"])
    # refused at render, naming the key and the fix
    from fedcloud_common.errors import ConfigError

    conf.write_text(CASO_CONF.replace("TEST-SITE", "OTHER-SITE"))
    with pytest.raises(ConfigError, match=r"accounting.caso.conf_file: its site_name 'OTHER-SITE'"):
        site.render(text)
    conf.write_text(CASO_CONF.replace("nova,neutron", "nova,prometheus"))
    with pytest.raises(ConfigError, match="extractor prometheus is not one the appliance runs"):
        site.render(text)


@covers("caso.vo_property")
def test_vo_property_is_the_project_property_caso_reads(site):
    text = ENABLED.replace("{project_tag", "{vo_property: 'egi.eu:VO', project_tag")
    assert site.render(text).extract.vo_property == "egi.eu:VO"


@covers("caso.projects")
def test_projects_are_accounted_without_a_tag(site):
    ids = ["4a1c0e2b9f6d4e0f8a7b3c2d1e0f9a8b", "b7d2e1f0a9c84b3e9d6f5a4c3b2a1f0e"]
    text = ENABLED.replace("project_tag: fedcloud", f"projects: [{', '.join(ids)}]")
    extract = site.render(text).extract
    assert (extract.projects, extract.project_tag) == (ids, None)


@covers("caso.project_tag")
def test_project_tag_selects_the_tagged_projects(site):
    extract = site.render(ENABLED.replace("fedcloud", "accounted")).extract
    assert (extract.projects, extract.project_tag) == ([], "accounted")


@covers("caso.start_date")
def test_start_date_is_where_the_first_window_starts(site):
    text = ENABLED.replace("2026-01-01", "2025-07-15")
    assert site.render(text).extract.start_date == datetime.date(2025, 7, 15)


def test_site_name_names_every_record(site):
    assert site.render(ENABLED).extract.site_name == "TEST-SITE"


# --- sender --------------------------------------------------------------------------


@covers("sender.schedule")
def test_sender_schedule_is_the_send_jobs_cron(site):
    config = site.config(_sender("schedule: '30 1 * * *'"))
    specs = {s.name: s for s in job_specs(config, "1")}
    assert specs["apel-send"].schedule == "30 1 * * *"


def test_by_default_records_go_to_egis_ams(site):
    send = site.render(ENABLED).send
    assert (send.protocol, send.host, send.port) == ("ams", "msg.argo.grnet.gr", None)
    assert (send.ams_project, send.destination, send.authx509_port) == (
        "accounting",
        "eu-egi-cloud-accounting",
        8443,
    )
    assert (send.token_file, send.server_cert, send.ca_bundle) == (None, None, None)
    assert (str(send.cert), str(send.key)) == (
        "/etc/grid-security/hostcert.pem",
        "/etc/grid-security/hostkey.pem",
    )


@covers("sender.protocol")
def test_protocol_chooses_the_transport(site):
    assert site.render(_sender("protocol: stomp")).send.protocol == "stomp"
    assert "sender.protocol" in site.refused(_sender("protocol: carrier-pigeon"))


@covers("sender.host", "sender.port")
def test_host_and_port_are_the_endpoints(site):
    send = site.render(_sender("host: msg.example.org\nport: 8443")).send
    assert (send.host, send.port) == ("msg.example.org", 8443)


@covers("sender.ams_project", "sender.destination")
def test_ams_project_and_destination_name_the_topic(site):
    send = site.render(_sender("ams_project: site-tests\ndestination: cloud-records")).send
    assert (send.ams_project, send.destination) == ("site-tests", "cloud-records")


@covers("sender.max_message_bytes")
def test_max_message_bytes_bounds_what_the_sender_publishes(site):
    assert site.render(ENABLED).send.max_message_bytes == 1_000_000 - 4096  # under AMS's 1 MB
    assert site.render(_sender("max_message_bytes: 500000")).send.max_message_bytes == 500_000
    assert "sender.max_message_bytes" in site.refused(_sender("max_message_bytes: 1000"))
    # what the limit does to the messages: services/accounting/tests/test_size_limit.py


@covers("sender.authx509_port")
def test_authx509_port_is_where_the_token_is_asked(site):
    assert site.render(_sender("authx509_port: 9443")).send.authx509_port == 9443


@covers("sender.token_file")
def test_a_token_file_is_staged_for_the_sender(site):
    token = site.secret("ams-token", "static-token\n")
    send = site.render(_sender(f"token_file: {token}")).send
    assert site.staged(send.token_file).read_text() == "static-token\n"
    # with a static token the cert-to-token call is never made
    assert "authx509_port is used only with protocol: ams, without token_file" in site.refused(
        _sender(f"token_file: {token}\nauthx509_port: 9443")
    )


@covers("sender.cert", "sender.key")
def test_the_host_certificate_is_read_where_the_job_mounts_it(site):
    send = site.render(
        _sender("cert: /etc/grid-security/site/cert.pem\nkey: /etc/grid-security/site/key.pem")
    ).send
    assert (str(send.cert), str(send.key)) == (
        "/etc/grid-security/site/cert.pem",
        "/etc/grid-security/site/key.pem",
    )
    # anywhere else the job would not see it
    found = site.refused(_sender("key: /etc/fedcloud-appliance/secrets/hostkey.pem"))
    assert "is not under /etc/grid-security/" in found


@covers("sender.ca_bundle")
def test_the_endpoints_ca_is_staged_and_replaces_the_outbound_one(site):
    outbound = site.secret("outbound-ca.pem", "outbound CA\n")
    endpoint = site.secret("endpoint-ca.pem", "endpoint CA\n")
    proxy = f"outbound: {{ca_bundle: {outbound}}}\n"
    send = site.render(proxy + ENABLED).send
    assert site.staged(send.ca_bundle).read_text() == "outbound CA\n"
    send = site.render(proxy + _sender(f"ca_bundle: {endpoint}")).send
    assert site.staged(send.ca_bundle).read_text() == "endpoint CA\n"


@covers("sender.server_cert")
def test_the_server_certificate_is_staged_for_encryption(site):
    cert = site.secret("apel-server.pem", "server certificate\n")
    send = site.render(_sender(f"server_cert: {cert}")).send
    assert site.staged(send.server_cert).read_text() == "server certificate\n"


@covers(
    "sender.stomp_ssl",
    "sender.stomp_vhost",
    "sender.stomp_username",
    "sender.stomp_password_file",
)
def test_stomp_login_vhost_and_tls_reach_the_sender(site):
    password = site.secret("stomp-password", "broker-secret\n")
    send = site.render(
        _sender(
            f"""\
            protocol: stomp
            host: broker.example.org
            port: 61613
            destination: /queue/global.accounting.cloud.CENTRAL
            stomp_ssl: false
            stomp_vhost: /apel
            stomp_username: site
            stomp_password_file: {password}
            """
        )
    ).send
    assert (send.protocol, send.host, send.port) == ("stomp", "broker.example.org", 61613)
    assert send.destination == "/queue/global.accounting.cloud.CENTRAL"
    assert (send.stomp_ssl, send.stomp_vhost, send.stomp_username) == (False, "/apel", "site")
    assert site.staged(send.stomp_password_file).read_text() == "broker-secret\n"
    assert site.render(_sender("protocol: stomp")).send.stomp_ssl is True


def test_a_stomp_login_needs_both_its_halves(site):
    found = site.refused(_sender("protocol: stomp\nstomp_username: site"))
    assert "stomp_username and stomp_password_file go together" in found


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        ("protocol: ams\nstomp_vhost: /apel", "stomp_vhost is used only with protocol: stomp"),
        ("stomp_ssl: false", "stomp_ssl is used only with protocol: stomp"),
        ("protocol: stomp\nams_project: x", "ams_project is used only with protocol: ams"),
        ("protocol: stomp\ntoken_file: /t", "token_file is used only with protocol: ams"),
        (
            "protocol: stomp\nstomp_ssl: false\nca_bundle: /ca.pem",
            "ca_bundle is used only with protocol: ams, or stomp with stomp_ssl: true",
        ),
    ],
)
def test_a_key_the_chosen_protocol_would_ignore_is_refused(site, lines, problem):
    assert problem in site.refused(_sender(lines))


# --- every key -----------------------------------------------------------------------


def _keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    """The dotted keys of a section and its sub-sections (``openstack`` is one key)."""
    keys = set()
    for name, field in model.model_fields.items():
        inner = field.annotation
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            keys |= _keys(inner, f"{prefix}{name}.")
        else:
            keys.add(f"{prefix}{name}")
    return keys


def test_every_key_has_a_test_of_its_effect():
    assert _keys(Accounting) - COVERED == set()
    assert COVERED - _keys(Accounting) == set(), "a test covers a key that no longer exists"
