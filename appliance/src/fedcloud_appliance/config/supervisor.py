"""appliance.yaml's ``supervisor``: how jobs run and where status is served."""

from __future__ import annotations

import datetime
from pathlib import Path

from pydantic import Field

from fedcloud_appliance.config.base import Section


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
