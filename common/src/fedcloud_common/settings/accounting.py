"""The accounting service's settings: cASO extraction and the APEL sender.

Both jobs run from one image and read one file, ``accounting.json``, which
the render step writes from appliance.yaml's ``accounting`` section: the
``extract`` part for ``fedcloud-accounting extract`` (caso-extract), the
``send`` part for ``fedcloud-accounting send`` (apel-send). Secrets are
paths to the service's staged copies, never values.

Fields without an appliance.yaml key (spool and state directories, time
bounds, batch sizes) are the service's own: their defaults are what the
appliance's volumes and the endpoints expect.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, model_validator

from fedcloud_common.model import Model
from fedcloud_common.openstack import Credentials

# The APEL outgoing spool cASO writes and the sender reads (the apel_spool volume).
APEL_SPOOL = Path("/var/spool/apel/outgoing/openstack")
# AMS refuses a publish over 1 MB with 413 (apel/ssm#155): stay just under it.
MAX_MESSAGE_BYTES = 1_000_000 - 4096
# Below this, one signed record (the certificate alone is ~2 KB) may not fit.
MIN_MESSAGE_BYTES = 16_384
# The record types cASO 5.2's ssm messenger writes, each in the form APEL
# loads: cloud (VMs, v0.4), ip (public IPs, v0.2), accelerator (GPUs from
# flavor properties, v0.1), storage (volumes, StAR). Energy is not among
# them: that messenger refuses EnergyRecord ("Unexpected record format!"),
# and APEL has no energy message form to send it in.
RecordType = Literal["cloud", "ip", "accelerator", "storage"]
Extractor = Literal["nova", "cinder", "neutron"]
# The cASO extractor each record type comes from; one cASO run per extractor.
EXTRACTOR_OF: dict[str, Extractor] = {
    "cloud": "nova",
    "accelerator": "nova",
    "ip": "neutron",
    "storage": "cinder",
}
# caso.conf sections a site's own file may carry into the rendered one.
CasoSection = Literal["accelerator", "benchmark"]
NO_ENERGY = (
    "energy: cASO 5.2's ssm messenger cannot write energy records (it raises on "
    "EnergyRecord) and APEL has no energy message; remove it from record_types"
)


def refuse_energy(value: object) -> object:
    """A clear refusal of ``energy`` rather than a bare 'input should be ...'."""
    if isinstance(value, list) and "energy" in value:
        raise ValueError(NO_ENERGY)
    return value


class ExtractSettings(Model):
    """What caso-extract needs: the cloud to account, which projects, the window start."""

    site_name: str = Field(description="the GOCDB site name every record carries (SiteName)")
    service_name: str | None = Field(
        None, description="the CloudComputeService the records name; the site name if unset"
    )
    openstack: Credentials = Field(
        description="Keystone credentials of the accounting user: username + password_file"
    )
    projects: list[str] = Field(
        [], description="ids of projects to account (cASO looks each up by id, not by name)"
    )
    project_tag: str | None = Field(None, description="also account every project with this tag")
    vo_property: str = Field("VO", description="the project property naming the project's VO")
    record_types: Annotated[list[RecordType], BeforeValidator(refuse_energy)] = Field(
        ["cloud"], min_length=1, description="what cASO extracts, each with its own watermark"
    )
    recovery_days: int = Field(
        7, ge=1, description="how far back a lost or corrupt watermark restarts extraction"
    )
    spool_dir: Path = Field(APEL_SPOOL, description="the APEL outgoing spool cASO writes into")
    state_dir: Path = Field(
        Path("/var/spool/caso"), description="the watermark and cASO's own lock and lastrun"
    )
    start_date: datetime.date = Field(description="where a new site's first window starts")
    records_per_message: int = Field(100, ge=1, le=1000, description="records per APEL message")
    run_timeout_s: float = Field(2 * 3600, gt=0, description="kill cASO after this long")
    caso_command: list[str] = Field(["caso-extract"], description="how cASO is started")

    @property
    def extractors(self) -> dict[Extractor, list[RecordType]]:
        """Each cASO extractor to run and the record types taken from it, in order."""
        runs: dict[Extractor, list[RecordType]] = {}
        for kind in self.record_types:
            runs.setdefault(EXTRACTOR_OF[kind], []).append(kind)
        return runs

    caso_sections: dict[CasoSection, dict[str, str]] = Field(
        {},
        description="[accelerator] and [benchmark] options for caso.conf, as a site's own "
        "caso.conf had them (flavor property names)",
    )

    @model_validator(mode="after")
    def _projects_or_tag(self) -> ExtractSettings:
        if not self.projects and not self.project_tag:
            raise ValueError("give projects (project ids) or project_tag")
        return self

    @model_validator(mode="after")
    def _caso_needs_a_password(self) -> ExtractSettings:
        # cASO lists projects with a system-scoped token, then scopes a new
        # one to each project; an application credential is bound to one
        # project and cannot be re-scoped.
        if self.openstack.username is None or self.openstack.password_file is None:
            raise ValueError(
                "openstack: cASO authenticates with username + password_file only: it "
                "re-scopes its token to each project it accounts, which application "
                "credentials (and clouds.yaml entries) cannot do; give a user with a password"
            )
        return self


class SendSettings(Model):
    """What apel-send needs: the endpoint, how to reach it, and what to sign with."""

    protocol: Literal["ams", "stomp", "noop"] = Field(
        "ams", description="ams (EGI's ARGO Messaging), stomp, or noop (a dry run)"
    )
    host: str = Field("msg.argo.grnet.gr", description="the endpoint's host name")
    port: int | None = Field(None, ge=1, le=65535, description="443 for AMS, 61613 for STOMP")
    authx509_port: int = Field(8443, ge=1, le=65535, description="AMS cert-to-token port")
    ams_project: str = Field("accounting", description="the AMS project of the topic")
    destination: str = Field("eu-egi-cloud-accounting", description="AMS topic or STOMP queue")
    token_file: Path | None = Field(None, description="static AMS token instead of authx509")
    stomp_ssl: bool = Field(True, description="STOMP over TLS, the host certificate as client's")
    stomp_vhost: str | None = Field(
        None, description="STOMP host header (RabbitMQ: the vhost); the host if unset"
    )
    stomp_username: str | None = Field(None, description="STOMP login")
    stomp_password_file: Path | None = Field(None, description="STOMP passcode, in a file")
    cert: Path = Field(Path("/etc/grid-security/hostcert.pem"), description="signs each message")
    key: Path = Field(Path("/etc/grid-security/hostkey.pem"), description="the cert's key")
    ca_bundle: Path | None = Field(None, description="CAs that sign the endpoint's certificate")
    server_cert: Path | None = Field(None, description="encrypt each message to this certificate")
    environment: dict[str, str] = Field(
        {}, description="proxy variables (HTTPS_PROXY, NO_PROXY) for reaching AMS"
    )
    spool_dir: Path = Field(APEL_SPOOL, description="the APEL outgoing spool to empty")
    quarantine_dir: Path = Field(
        Path("/var/spool/apel/quarantine"), description="messages APEL would never accept"
    )
    message_timeout_s: float = Field(30, gt=0, description="bound on sending one message")
    batch_size: int = Field(20, ge=1, le=100, description="messages per AMS publish call")
    max_message_bytes: int = Field(
        MAX_MESSAGE_BYTES,
        ge=MIN_MESSAGE_BYTES,
        description="largest publish request (AMS) or message (STOMP) the sender makes",
    )
    stale_lock_s: int = Field(600, ge=0, description="locks older than this are cleared")
    min_cert_validity_h: float = Field(24, ge=0, description="refuse certs expiring sooner")

    @model_validator(mode="after")
    def _stomp_login_is_whole(self) -> SendSettings:
        if (self.stomp_username is None) != (self.stomp_password_file is None):
            raise ValueError("stomp_username and stomp_password_file go together: give both")
        return self


class AccountingSettings(Model):
    """``accounting.json``: one file for both jobs, as the render step writes it."""

    extract: ExtractSettings = Field(description="the caso-extract job's settings")
    send: SendSettings = Field(description="the apel-send job's settings")
