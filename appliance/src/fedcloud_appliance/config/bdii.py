"""appliance.yaml's ``bdii``: the information system and the site's VOs."""

from __future__ import annotations

import datetime
from pathlib import Path

from pydantic import Field

from fedcloud_appliance.config.base import Cron, Section
from fedcloud_common.openstack import Credentials
from fedcloud_common.settings.bdii import BDII_PORT, Port


class VoMapping(Section):
    project: str = Field(
        description="the VO's Keystone project, by name or id: the BDII publishes it as the "
        "VO's share (a name is looked up among the projects of the appliance's user), and "
        "images of the VO's lists are shared with it"
    )


class Bdii(Section):
    enabled: bool = Field(
        True, description="false: no BDII settings are rendered and no bdii-publish job runs"
    )
    schedule: Cron = Field("*/30 * * * *", description="when the bdii-publish job runs (cron, UTC)")
    openstack: Credentials | None = Field(
        None, description="the BDII's own credentials; none: the top-level openstack section"
    )
    vos: dict[str, VoMapping] = Field(
        {}, description="VO -> the project its share is published with"
    )
    vo_map_file: Path | None = Field(
        None,
        description="voms.json-style VO-to-project map (Keystone-VOMS, cASO); the loader "
        "merges its VOs into vos, whose own entries win",
    )
    delete_delay: datetime.timedelta = Field(
        datetime.timedelta(hours=1),
        description="how long an entry that vanished from the cloud stays published",
    )
    port: Port = Field(
        BDII_PORT,
        description="the host port the site BDII is published on (slapd listens on 2170 "
        "inside its container); the site BDII's GLUE 2 endpoint names it",
    )

    def projects(self) -> dict[str, str]:
        """The site's VO -> project map: what the BDII publishes, where images go."""
        return {vo: mapping.project for vo, mapping in self.vos.items()}
