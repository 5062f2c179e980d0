"""appliance.yaml's ``bdii``: the information system and the site's VOs."""

from __future__ import annotations

import datetime
from pathlib import Path

from pydantic import Field

from fedcloud_appliance.config.base import Cron, Section
from fedcloud_common.openstack import Credentials


class VoMapping(Section):
    project: str
    # Optional extra: the endpoint/membership details cloud-info-provider needs.
    auth_project_id: str | None = None


class Bdii(Section):
    enabled: bool = True
    schedule: Cron = "*/30 * * * *"
    openstack: Credentials | None = None
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
