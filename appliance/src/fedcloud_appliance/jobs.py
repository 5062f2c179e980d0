"""The appliance's scheduled jobs, derived from the config.

One row per job kind: which service image runs it, the command, the
volumes it needs. Job containers get the rendered config volume (read only:
settings, and their own copies of the secrets they need, see render/) and
the grid-security directory (read only); never a secret in their
environment.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable

from fedcloud_appliance.config import ApplianceConfig
from fedcloud_appliance.jobspec import JobSpec, Mount
from fedcloud_common.services import RENDERED_DIR as RENDERED

# Compose volumes (compose/docker-compose.yml), named <project>_<volume> by
# compose and by `docker stack deploy` alike.
VOLUMES = {
    "config": Mount("config", RENDERED),
    "grid_security": Mount("grid_security", "/etc/grid-security"),
    "image_data": Mount("image_data", "/image_data", read_only=False),
    "apel_spool": Mount("apel_spool", "/var/spool/apel", read_only=False),
    "caso_state": Mount("caso_state", "/var/spool/caso", read_only=False),
    "bdii_resource_state": Mount("bdii_resource_state", "/var/lib/fedcloud-bdii", read_only=False),
    "image_spool": Mount("image_spool", "/var/spool/cloudkeeper", read_only=False),
    "region_state": Mount("region_state", "/var/lib/fedcloud-glancesync", read_only=False),
}
DEFAULT_PROJECT = "fedcloud-appliance"
# How long image-sync waits for cloudkeeper-os to apply what it queued.
BACKEND_WAIT_S = 1800


@dataclasses.dataclass(frozen=True)
class JobKind:
    name: str
    service: str  # config section, and the image's name
    image: str
    command: tuple[str, ...]
    volumes: tuple[str, ...]
    schedule: Callable[[ApplianceConfig], str]  # its cron expression in the config
    user: str | None = None  # the image's own (non-root) user unless set
    after: str | None = None  # catch-up order (JobSpec.after)
    # Linux capabilities it keeps; every job container drops all others.
    capabilities: tuple[str, ...] = ()
    # Killed after this long unless supervisor.job_timeout says otherwise: a
    # hung publish is found in minutes, while big downloads get hours.
    timeout: datetime.timedelta = datetime.timedelta(hours=1)


KINDS = (
    JobKind(
        "image-sync",
        "images",
        "cloudkeeper",
        # Ends when cloudkeeper-os has applied the changes: the run's outcome
        # is then what Glance holds, and a publish after it shows the images.
        (
            "fedcloud-cloudkeeper",
            "sync",
            "--config",
            f"{RENDERED}/cloudkeeper.json",
            "--wait",
            str(BACKEND_WAIT_S),
        ),
        ("config", "grid_security", "image_data", "image_spool"),
        lambda config: config.images.schedule,
        timeout=datetime.timedelta(hours=3),
    ),
    JobKind(
        "bdii-publish",
        "bdii",
        "bdii",
        ("fedcloud-bdii", "publish", "--config", f"{RENDERED}/bdii/resource.json"),
        # Publishes into the resource BDII's slapd through its ldapi socket.
        ("config", "bdii_resource_state"),
        lambda config: config.bdii.schedule,
        after="image-sync",
        timeout=datetime.timedelta(minutes=20),
    ),
    JobKind(
        "region-sync",
        "regions",
        "glancesync",
        # Every configured region, `parallelism` at a time; status.json and
        # one log per region and run in the region_state volume.
        ("fedcloud-glancesync", "-c", f"{RENDERED}/glancesync.json", "sync", "--parallel"),
        ("config", "region_state"),
        lambda config: config.regions.schedule,
        after="image-sync",
        timeout=datetime.timedelta(hours=6),
    ),
    JobKind(
        "caso-extract",
        "accounting",
        "accounting",
        ("fedcloud-accounting", "extract", "--config", f"{RENDERED}/accounting.json"),
        ("config", "apel_spool", "caso_state"),
        lambda config: config.accounting.caso.schedule,
    ),
    JobKind(
        "apel-send",
        "accounting",
        "accounting",
        ("fedcloud-accounting", "send", "--config", f"{RENDERED}/accounting.json"),
        ("config", "grid_security", "apel_spool"),
        lambda config: config.accounting.sender.schedule,
        timeout=datetime.timedelta(minutes=30),
        # It signs with the host key, which sites keep root-only (0600), and
        # moves sent messages out of the spool the extract job's user owns.
        user="0",
        capabilities=("DAC_OVERRIDE",),
        after="caso-extract",
    ),
)


def job_specs(
    config: ApplianceConfig, image_tag: str, project: str = DEFAULT_PROJECT
) -> list[JobSpec]:
    """The enabled jobs, ready for the scheduler; volumes of compose ``project``."""
    tag = config.supervisor.image_tag or image_tag
    specs = []
    for kind in KINDS:
        section = getattr(config, kind.service)
        if not section.enabled:
            continue
        specs.append(
            JobSpec(
                name=kind.name,
                image=f"fedcloud/{kind.image}:{tag}",
                command=kind.command,
                schedule=kind.schedule(config),
                timeout=config.supervisor.job_timeout or kind.timeout,
                memory=config.supervisor.job_memory,
                mounts=tuple(
                    dataclasses.replace(VOLUMES[v], source=f"{project}_{VOLUMES[v].source}")
                    for v in kind.volumes
                ),
                network=config.supervisor.job_network,
                user=kind.user,
                capabilities=kind.capabilities,
                after=kind.after,
                project=project,
            )
        )
    return specs
