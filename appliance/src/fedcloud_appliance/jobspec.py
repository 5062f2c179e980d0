"""What the supervisor needs to know to run one job container."""

from __future__ import annotations

import dataclasses
import datetime


@dataclasses.dataclass(frozen=True)
class Mount:
    """A named volume or host path mounted into the job container."""

    source: str
    target: str
    read_only: bool = True
    kind: str = "volume"  # or "bind"


@dataclasses.dataclass(frozen=True)
class JobSpec:
    name: str
    image: str
    command: tuple[str, ...]
    schedule: str  # cron expression, UTC
    timeout: datetime.timedelta
    memory: str = "2g"
    cpus: float = 1.0
    mounts: tuple[Mount, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()  # never secrets: those are files
    user: str | None = None
    # Kept when all others are dropped (the container also runs with a
    # read-only root file system, a private /tmp and no-new-privileges).
    capabilities: tuple[str, ...] = ()
    network: str | None = None
    # When both are caught up at start, this job runs after that one (a
    # publish after the sync it publishes, a send after the extract it sends).
    after: str | None = None
    # The compose project (or stack) the job belongs to: in its container's
    # name and labels, so two appliances on one engine never collide.
    project: str = "fedcloud-appliance"
