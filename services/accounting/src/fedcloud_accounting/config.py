"""The accounting jobs' configuration, as typed models.

The supervisor renders one JSON file per job from the appliance's
``appliance.yaml``; the field names follow that file's ``accounting``
section so an operator recognises them. Secrets are paths, never values.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fedcloud_accounting.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)
APEL_SPOOL = Path("/var/spool/apel/outgoing/openstack")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Keystone(_Model):
    """Password credentials: cASO always re-scopes, so app credentials cannot work."""

    auth_url: str
    username: str
    password_file: Path
    user_domain_name: str = "Default"
    project_domain_name: str = "Default"
    region: str | None = None
    ca_bundle: Path | None = None
    timeout_s: float = Field(60, gt=0, description="per OpenStack API request")


class ExtractConfig(_Model):
    site_name: str
    service_name: str | None = Field(None, description="CloudComputeService; default site name")
    keystone: Keystone
    projects: list[str] = []
    project_tag: str | None = None
    vo_property: str = "VO"
    extractors: list[str] = ["nova"]
    spool_dir: Path = APEL_SPOOL
    state_dir: Path = Path("/var/spool/caso")
    start_date: datetime.date = Field(description="where a new site's first run starts")
    records_per_message: int = Field(100, ge=1, le=1000)
    run_timeout_s: float = Field(2 * 3600, gt=0, description="kill cASO after this long")
    caso_command: list[str] = ["caso-extract"]

    @model_validator(mode="after")
    def _projects_or_tag(self) -> ExtractConfig:
        if not self.projects and not self.project_tag:
            raise ValueError("give projects (names or ids) or project_tag")
        return self


class SendConfig(_Model):
    protocol: Literal["ams", "stomp", "noop"] = "ams"
    host: str = "msg.argo.grnet.gr"
    port: int | None = Field(None, ge=1, le=65535, description="443 for AMS, 61613 for STOMP")
    authx509_port: int = Field(8443, ge=1, le=65535, description="AMS cert-to-token port")
    ams_project: str = "accounting"
    destination: str = Field("eu-egi-cloud-accounting", description="AMS topic or STOMP queue")
    token_file: Path | None = Field(None, description="static AMS token instead of authx509")
    stomp_ssl: bool = True
    stomp_vhost: str | None = Field(None, description="STOMP host header (RabbitMQ: vhost)")
    stomp_username: str | None = None
    stomp_password_file: Path | None = None
    cert: Path = Path("/etc/grid-security/hostcert.pem")
    key: Path = Path("/etc/grid-security/hostkey.pem")
    ca_bundle: Path | None = Field(None, description="CAs that sign the endpoint's certificate")
    server_cert: Path | None = Field(None, description="encrypt each message to this certificate")
    environment: dict[str, str] = Field(
        {}, description="proxy variables (HTTPS_PROXY, NO_PROXY) for reaching AMS"
    )
    spool_dir: Path = APEL_SPOOL
    quarantine_dir: Path = Path("/var/spool/apel/quarantine")
    message_timeout_s: float = Field(30, gt=0, description="bound on sending one message")
    batch_size: int = Field(20, ge=1, le=100, description="messages per AMS publish call")
    stale_lock_s: int = Field(600, ge=0, description="locks older than this are cleared")
    min_cert_validity_h: float = Field(24, ge=0, description="refuse certs expiring sooner")


def load(model: type[ModelT], path: Path, section: str | None = None) -> ModelT:
    """Read a job config; every problem is one ConfigError naming the file.

    The supervisor renders one ``accounting.json`` for both jobs, with an
    ``extract`` and a ``send`` section; a file holding just one job's
    fields (no such section) is read whole.
    """
    try:
        data = json.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise ConfigError(path=path, problem="does not exist") from None
    except ValueError as error:
        raise ConfigError(path=path, problem=f"not JSON ({error})") from None
    where = ""
    if section is not None and isinstance(data, dict) and section in data:
        data, where = data[section], f"{section}."
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{where}{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}"
            for e in error.errors()
        )
        raise ConfigError(path=path, problem=problems) from None
