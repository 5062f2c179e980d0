"""The appliance's one configuration file, as a typed model.

Every section an operator may write is declared here with its default, so
the file stays short for a typical site and an unknown or misspelt key is an
error rather than silently ignored. Secrets are only ever paths to files.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Annotated, Literal

from apscheduler.triggers.cron import CronTrigger
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    model_validator,
)

DEFAULT_PATH = Path("/etc/fedcloud-appliance/appliance.yaml")


def _valid_cron(expression: str) -> str:
    try:
        CronTrigger.from_crontab(expression, timezone="UTC")
    except ValueError as error:
        raise ValueError(
            f"{expression!r} is not a cron expression ({error}); "
            "write five fields, e.g. '0 */4 * * *' for every 4 hours"
        ) from None
    return expression


Cron = Annotated[str, AfterValidator(_valid_cron)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Contacts(Section):
    email: str
    security_email: str | None = None


class Site(Section):
    name: str = Field(description="the site's name exactly as in GOCDB")
    hostname: str = Field(description="public host name of the appliance")
    country: str | None = None
    contacts: Contacts | None = None


class OpenStackAuth(Section):
    """Keystone v3 credentials: password, application credential or clouds.yaml."""

    auth_url: HttpUrl | None = None
    username: str | None = None
    password_file: Path | None = None
    project_name: str | None = None
    project_id: str | None = None
    user_domain_name: str = "Default"
    project_domain_name: str = "Default"
    application_credential_id: str | None = None
    application_credential_secret_file: Path | None = None
    cloud: str | None = Field(None, description="an entry of clouds_yaml")
    clouds_yaml: Path | None = None
    region: str | None = None
    ca_bundle: Path | None = None

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> OpenStackAuth:
        ways = {
            "password": self.username is not None or self.password_file is not None,
            "application credential": self.application_credential_id is not None,
            "clouds.yaml": self.cloud is not None,
        }
        chosen = [name for name, used in ways.items() if used]
        if len(chosen) != 1:
            raise ValueError(
                "give exactly one way to authenticate: username + password_file "
                "(+ project_name), application_credential_id + "
                "application_credential_secret_file, or cloud (+ clouds_yaml); "
                f"found {', '.join(chosen) or 'none'}"
            )
        if chosen == ["password"]:
            missing = [
                key
                for key in ("auth_url", "username", "password_file")
                if getattr(self, key) is None
            ]
            if self.project_name is None and self.project_id is None:
                missing.append("project_name")
            if missing:
                raise ValueError(f"password authentication also needs: {', '.join(missing)}")
        if chosen == ["application credential"] and (
            self.auth_url is None or self.application_credential_secret_file is None
        ):
            raise ValueError(
                "application credentials need auth_url and application_credential_secret_file"
            )
        return self

    def secret_files(self) -> list[Path]:
        return [p for p in (self.password_file, self.application_credential_secret_file) if p]


class Endorser(Section):
    dn: str = Field(description="signer subject, e.g. /DC=EU/DC=EGI/C=NL/O=Hosts/...")
    ca: str = Field(description="signer's issuer DN")


class ImageList(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    url: HttpUrl
    token_file: Path | None = None
    endorser: Endorser | None = None
    vo: str | None = None
    project: str | None = Field(
        None, description="project the VO's images go to; default: the VO's in bdii.vos"
    )
    enabled: bool = True
    prefix: str = ""


class Images(Section):
    enabled: bool = True
    schedule: Cron = "0 */4 * * *"
    openstack: OpenStackAuth | None = None
    lists: list[ImageList] = []
    lists_file: Path | None = Field(
        None, description="cloudkeeper's image-lists.conf: one URL per line"
    )
    endorser: Endorser | None = Field(
        None, description="who signs every list that names no endorser (and lists_file's)"
    )
    ca_dir: Path = Path("/etc/grid-security/certificates")
    formats: list[Literal["qcow2", "raw", "vmdk", "vdi"]] = ["qcow2", "raw"]
    tag: str = "fedcloud-appliance"
    prefix: str = ""

    @model_validator(mode="after")
    def _lists_are_named_once_and_trusted(self) -> Images:
        names = [image_list.name for image_list in self.lists]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"image list names must be unique; repeated: {duplicates}")
        if self.endorser is None:
            unsigned = [lst.name for lst in self.lists if lst.endorser is None]
            if self.lists_file is not None:
                unsigned.append("lists_file")
            if unsigned:
                raise ValueError(
                    f"no endorser for {', '.join(unsigned)}: give images.endorser (dn, ca) "
                    "or an endorser per list"
                )
        return self


class VoMapping(Section):
    project: str
    # Optional extra: the endpoint/membership details cloud-info-provider needs.
    auth_project_id: str | None = None


class Bdii(Section):
    enabled: bool = True
    schedule: Cron = "*/30 * * * *"
    openstack: OpenStackAuth | None = None
    vos: dict[str, VoMapping] = {}
    vo_map_file: Path | None = Field(
        None,
        description="voms.json-style VO-to-project map (Keystone-VOMS, cASO); the loader "
        "merges its VOs into vos, whose own entries win",
    )
    delete_delay: datetime.timedelta = datetime.timedelta(hours=1)
    port: int = Field(2170, ge=1, le=65535)

    def projects(self) -> dict[str, str]:
        """The site's VO -> project map: what the BDII publishes, where images go."""
        return {vo: mapping.project for vo, mapping in self.vos.items()}


class Caso(Section):
    schedule: Cron = "0 * * * *"
    extractors: list[str] = ["nova"]
    vo_property: str = "VO"
    projects: list[str] = []
    project_tag: str | None = None
    start_date: datetime.date | None = Field(None, description="first day a new site accounts from")


class Sender(Section):
    schedule: Cron = "0 */6 * * *"
    protocol: Literal["ams", "stomp"] = "ams"
    host: str = "msg.argo.grnet.gr"
    port: int | None = Field(None, ge=1, le=65535, description="443 for AMS, 61613 STOMP")
    ams_project: str = "accounting"
    authx509_port: int = Field(8443, ge=1, le=65535, description="AMS cert-to-token port")
    token_file: Path | None = Field(None, description="a static AMS token instead")
    destination: str = Field("eu-egi-cloud-accounting", description="AMS topic or STOMP queue")
    cert: Path = Path("/etc/grid-security/hostcert.pem")
    key: Path = Path("/etc/grid-security/hostkey.pem")
    ca_bundle: Path | None = Field(None, description="CAs of the endpoint's certificate")
    server_cert: Path | None = Field(None, description="encrypt to this certificate")


class Accounting(Section):
    enabled: bool = True
    openstack: OpenStackAuth | None = None
    caso: Caso = Caso()
    sender: Sender = Sender()

    @model_validator(mode="after")
    def _what_caso_needs(self) -> Accounting:
        if not self.enabled:
            return self
        if not self.caso.projects and not self.caso.project_tag:
            raise ValueError("caso needs projects (a list of project names or ids) or project_tag")
        if self.caso.start_date is None:
            raise ValueError(
                "caso.start_date is required: the first day a new site accounts from, "
                "e.g. start_date: 2026-01-01"
            )
        return self


class Outbound(Section):
    """How the appliance reaches services outside the cloud: GOCDB, image lists, AMS.

    Sites behind an HTTP proxy set it here once instead of in every
    container; the demo uses it to reach its GOCDB stand-in as goc.egi.eu.
    """

    https_proxy: HttpUrl | None = Field(None, description="e.g. http://proxy.example.org:3128")
    no_proxy: list[str] = Field(
        [], description="hosts reached directly, e.g. the Keystone host; always with localhost"
    )
    ca_bundle: Path | None = Field(
        None,
        description="CAs trusted for HTTPS to GOCDB, the image lists and AMS, instead of the "
        "image's list of public CAs",
    )

    def environment(self) -> dict[str, str]:
        """Proxy variables as every HTTP client in the images reads them."""
        if self.https_proxy is None:
            return {}
        no_proxy = ",".join(dict.fromkeys(["localhost", "127.0.0.1", *self.no_proxy]))
        proxy = str(self.https_proxy).rstrip("/")
        return {
            "HTTPS_PROXY": proxy,
            "https_proxy": proxy,
            "NO_PROXY": no_proxy,
            "no_proxy": no_proxy,
        }


class Supervisor(Section):
    state_dir: Path = Path("/var/lib/fedcloud-appliance")
    status_port: int = Field(8080, ge=1, le=65535)
    job_timeout: datetime.timedelta = datetime.timedelta(hours=3)
    job_memory: str = Field("2g", pattern=r"^\d+[kmg]?$")
    image_tag: str | None = Field(None, description="tag of the appliance's images")
    job_network: str | None = Field(
        None,
        description="Docker network of job containers: default bridge, 'host' when the "
        "cloud is only reachable from the host itself (the demo)",
    )


class ApplianceConfig(Section):
    site: Site
    openstack: OpenStackAuth | None = None
    images: Images = Images()
    bdii: Bdii = Bdii()
    accounting: Accounting = Accounting(enabled=False)
    outbound: Outbound = Outbound()
    supervisor: Supervisor = Supervisor()

    @model_validator(mode="after")
    def _every_enabled_service_can_authenticate(self) -> ApplianceConfig:
        for name in ("images", "bdii", "accounting"):
            section = getattr(self, name)
            if section.enabled and section.openstack is None and self.openstack is None:
                raise ValueError(
                    f"{name} is enabled but has no OpenStack credentials: add a top-level "
                    f"'openstack' section or '{name}.openstack'"
                )
        return self

    @model_validator(mode="after")
    def _caso_uses_a_password(self) -> ApplianceConfig:
        if self.accounting.enabled and (self.accounting.openstack or self.openstack):
            auth = self.openstack_for("accounting")
            if auth.username is None:
                raise ValueError(
                    "accounting: cASO authenticates with username + password_file only "
                    "(it re-scopes per project, which application credentials cannot); "
                    "give accounting.openstack with a password"
                )
        return self

    def openstack_for(self, service: Literal["images", "bdii", "accounting"]) -> OpenStackAuth:
        """The credentials a service uses: its own, else the shared ones."""
        auth = getattr(self, service).openstack or self.openstack
        assert auth is not None  # guaranteed by validation
        return auth
