"""appliance.yaml's ``accounting``: cASO extraction and the APEL sender."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from fedcloud_appliance.config.base import Cron, Section
from fedcloud_common.openstack import Credentials


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
    openstack: Credentials | None = None
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
