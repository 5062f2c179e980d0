"""appliance.yaml's ``accounting``: cASO extraction and the APEL sender.

Every key here reaches ``accounting.json`` (``render/accounting.py``) or
the jobs' schedules (``jobs.py``). A key the chosen way of sending would
ignore (an AMS key with ``protocol: stomp``, say) is refused rather than
accepted and dropped, so what the file says is what the sender does.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, model_validator

from fedcloud_appliance.config.base import Cron, Section
from fedcloud_common.openstack import Credentials
from fedcloud_common.settings.accounting import (
    MAX_MESSAGE_BYTES,
    MIN_MESSAGE_BYTES,
    RecordType,
    refuse_energy,
)

# Where the host's grid-security directory is mounted, in the supervisor and
# in every job container alike (compose's grid_security volume).
GRID_SECURITY = Path("/etc/grid-security")


class Caso(Section):
    """The hourly extraction: which projects cASO accounts, and from when."""

    schedule: Cron = Field("0 * * * *", description="when caso-extract runs (cron, UTC)")
    record_types: Annotated[list[RecordType], BeforeValidator(refuse_energy)] = Field(
        ["cloud"],
        min_length=1,
        description="what cASO accounts: cloud (VMs, nova), accelerator (GPUs, nova flavors), "
        "ip (public IPs, neutron), storage (volumes, cinder); each keeps its own watermark",
    )
    vo_property: str = Field("VO", description="the project property that names its VO")
    projects: list[str] = Field(
        [], description="ids of projects to account (cASO looks each up by id, not by name)"
    )
    project_tag: str | None = Field(None, description="also account every project with this tag")
    start_date: datetime.date | None = Field(None, description="first day a new site accounts from")
    conf_file: Path | None = Field(
        None,
        description="a caso.conf the site already runs, taken as input: its projects, caso_tag, "
        "vo_property, extractor/record_types, [accelerator] and [benchmark] apply where the "
        "keys here are not set ([keystone_auth] is not read: the accounting credentials are)",
    )


class Sender(Section):
    """The 6-hourly delivery of the signed records, over AMS or STOMP."""

    schedule: Cron = Field("0 */6 * * *", description="when apel-send runs (cron, UTC)")
    protocol: Literal["ams", "stomp"] = Field(
        "ams", description="ams (EGI's ARGO Messaging Service) or stomp (an APEL broker)"
    )
    host: str = Field("msg.argo.grnet.gr", description="the endpoint's host name")
    port: int | None = Field(
        None, ge=1, le=65535, description="the endpoint's port; unset: 443 (AMS), 61613 (STOMP)"
    )
    ams_project: str = Field("accounting", description="the AMS project of the topic")
    authx509_port: int = Field(8443, ge=1, le=65535, description="AMS cert-to-token port")
    token_file: Path | None = Field(None, description="a static AMS token instead, in a file")
    stomp_ssl: bool = Field(
        True, description="STOMP over TLS, with the host certificate as client certificate"
    )
    stomp_vhost: str | None = Field(
        None, description="the STOMP host header (RabbitMQ: the vhost); host if unset"
    )
    stomp_username: str | None = Field(None, description="the STOMP login, if the broker wants one")
    stomp_password_file: Path | None = Field(
        None, description="the STOMP login's passcode, in a file in the secrets directory"
    )
    destination: str = Field("eu-egi-cloud-accounting", description="AMS topic or STOMP queue")
    max_message_bytes: int = Field(
        MAX_MESSAGE_BYTES,
        ge=MIN_MESSAGE_BYTES,
        description="largest publish request (AMS) or message (STOMP) sent: records are packed "
        "and split to fit; AMS refuses over 1 MB (413), so the default is just under it",
    )
    cert: Path = Field(
        GRID_SECURITY / "hostcert.pem",
        description="the host certificate that signs the records (under /etc/grid-security)",
    )
    key: Path = Field(
        GRID_SECURITY / "hostkey.pem",
        description="the host certificate's key (under /etc/grid-security)",
    )
    ca_bundle: Path | None = Field(
        None, description="CAs of the endpoint's certificate; unset: outbound.ca_bundle's"
    )
    server_cert: Path | None = Field(
        None, description="the accounting server's certificate: each message is encrypted to it"
    )

    @model_validator(mode="after")
    def _host_credentials_where_the_sender_sees_them(self) -> Sender:
        # Read at each run from the mounted directory, not copied at render
        # time, so a renewed host certificate is used at the next run.
        for key in ("cert", "key"):
            path: Path = getattr(self, key)
            if not path.is_relative_to(GRID_SECURITY):
                raise ValueError(
                    f"{key}: {path} is not under {GRID_SECURITY}/, the host directory the "
                    "sender job mounts; install the host certificate and key there"
                )
        return self

    @model_validator(mode="after")
    def _every_key_given_is_used(self) -> Sender:
        ams, stomp = self.protocol == "ams", "protocol: stomp"
        # The keys one way of sending uses and another ignores: (used now, used with).
        only = {
            "ams_project": (ams, "protocol: ams"),
            "authx509_port": (ams and self.token_file is None, "protocol: ams, without token_file"),
            "token_file": (ams, "protocol: ams"),
            "stomp_ssl": (not ams, stomp),
            "stomp_vhost": (not ams, stomp),
            "stomp_username": (not ams, stomp),
            "stomp_password_file": (not ams, stomp),
            "ca_bundle": (ams or self.stomp_ssl, "protocol: ams, or stomp with stomp_ssl: true"),
        }
        unused = [
            f"{key} is used only with {used_with}"
            for key, (used, used_with) in only.items()
            if key in self.model_fields_set and not used
        ]
        if unused:
            raise ValueError(f"{'; '.join(unused)}: remove the key or change protocol")
        if (self.stomp_username is None) != (self.stomp_password_file is None):
            raise ValueError("stomp_username and stomp_password_file go together: give both")
        return self


class Accounting(Section):
    """cASO's extraction into the APEL spool and the sender that empties it."""

    enabled: bool = Field(True, description="run caso-extract and apel-send")
    openstack: Credentials | None = Field(
        None,
        description="the accounting user's credentials (username + password_file), "
        "if not the top-level openstack section's",
    )
    caso: Caso = Field(Caso(), description="cASO's extraction of usage records into the spool")
    sender: Sender = Field(
        Sender(), description="delivery of the signed records to the accounting endpoint"
    )

    @model_validator(mode="after")
    def _what_caso_needs(self) -> Accounting:
        if not self.enabled:
            return self
        if not self.caso.projects and not self.caso.project_tag and not self.caso.conf_file:
            raise ValueError(
                "caso needs projects (a list of project ids), project_tag or conf_file"
            )
        if self.caso.start_date is None:
            raise ValueError(
                "caso.start_date is required: the first day a new site accounts from, "
                "e.g. start_date: 2026-01-01"
            )
        return self
