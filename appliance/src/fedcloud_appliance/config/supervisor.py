"""appliance.yaml's ``supervisor``: how jobs run and where status is served."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Literal

from pydantic import Field

from fedcloud_appliance.config.base import Section


class Supervisor(Section):
    state_dir: Path = Field(
        Path("/var/lib/fedcloud-appliance"),
        description="where the supervisor keeps the run history (in its container)",
    )
    status_port: int = Field(
        8080, ge=1, le=65535, description="host port the status page (and /status.json) is on"
    )
    job_timeout: datetime.timedelta | None = Field(
        None,
        description="kill any job running longer; default per job: image-sync 3 h, "
        "bdii-publish 20 min, caso-extract 1 h, apel-send 30 min",
    )
    job_memory: str = Field(
        "2g", pattern=r"^\d+[kmg]?$", description="memory limit of each job container"
    )
    retries: int = Field(
        3, ge=0, le=10, description="retries of a failed scheduled run before its next one; 0: none"
    )
    retry_after: datetime.timedelta = Field(
        datetime.timedelta(minutes=5),
        description="wait before the first retry; each next retry waits twice as long",
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description="the one line per job run in the supervisor's log: key=value text, or "
        "JSON for log collectors",
    )
    image_tag: str | None = Field(None, description="tag of the appliance's images")
    job_network: str | None = Field(
        None,
        description="Docker network of job containers: default bridge, 'host' when the "
        "cloud is only reachable from the host itself (the demo)",
    )
