"""The appliance's one configuration file, as a typed model.

Every section an operator may write is declared with its default, one
module per section, so the file stays short for a typical site and an
unknown or misspelt key is an error rather than silently ignored. Secrets
are only ever paths to files. OpenStack credentials are
``fedcloud_common.openstack.Credentials``, the model every service reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from fedcloud_appliance.config.accounting import Accounting, Caso, Sender
from fedcloud_appliance.config.base import Section
from fedcloud_appliance.config.bdii import Bdii, VoMapping
from fedcloud_appliance.config.images import Endorser, ImageList, Images
from fedcloud_appliance.config.outbound import Outbound
from fedcloud_appliance.config.regions import Regions, RegionsMaster, RegionTarget
from fedcloud_appliance.config.site import Contacts, Site
from fedcloud_appliance.config.supervisor import Supervisor
from fedcloud_common.openstack import Credentials

__all__ = [
    "DEFAULT_PATH",
    "Accounting",
    "ApplianceConfig",
    "Bdii",
    "Caso",
    "Contacts",
    "Credentials",
    "Endorser",
    "ImageList",
    "Images",
    "Outbound",
    "RegionTarget",
    "Regions",
    "RegionsMaster",
    "Sender",
    "Site",
    "Supervisor",
    "VoMapping",
]

DEFAULT_PATH = Path("/etc/fedcloud-appliance/appliance.yaml")


class ApplianceConfig(Section):
    site: Site = Field(description="who the site is, as GOCDB and the BDII name it")
    openstack: Credentials | None = Field(
        None, description="credentials every service uses unless it has its own"
    )
    images: Images = Field(Images(), description="image replication: signed lists into Glance")
    bdii: Bdii = Field(Bdii(), description="the information system: the site BDII on bdii.port")
    accounting: Accounting = Field(
        Accounting(enabled=False), description="accounting: cASO records, signed, to APEL"
    )
    regions: Regions = Field(
        Regions(), description="multi-region image sync: a master region's images elsewhere"
    )
    outbound: Outbound = Field(
        Outbound(), description="only behind an HTTP proxy: how the appliance reaches out"
    )
    supervisor: Supervisor = Field(Supervisor(), description="how jobs run, and the status page")

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
    def _regions_master_can_authenticate(self) -> ApplianceConfig:
        master = self.regions.master
        if self.regions.enabled and master and master.openstack is None and not self.openstack:
            raise ValueError(
                "regions is enabled but its master has no OpenStack credentials: add a "
                "top-level 'openstack' section or 'regions.master.openstack'"
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

    def openstack_for(self, service: Literal["images", "bdii", "accounting"]) -> Credentials:
        """The credentials a service uses: its own, else the shared ones."""
        auth = getattr(self, service).openstack or self.openstack
        assert auth is not None  # guaranteed by validation
        return auth
