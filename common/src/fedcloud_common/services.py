"""Who each service is: its image, the user its container runs as, and
where it sees the rendered settings.

One table for the facts more than one place needs: tools/build-image
passes ``uid`` to each Dockerfile's ``useradd`` (``--build-arg
SERVICE_UID``), the render step gives each service's secret copies to that
uid, and the tests assert it.
"""

from __future__ import annotations

import dataclasses

# Where every service container mounts the rendered config volume.
RENDERED_DIR = "/etc/fedcloud-appliance/rendered"


@dataclasses.dataclass(frozen=True)
class Service:
    image: str  # fedcloud/<image>:<tag>, built from services/<image>/ or appliance/
    section: str | None  # the appliance.yaml section it is configured by
    uid: int | None  # the non-root user its image runs as (None: root, or its own)


SERVICES = {
    "cloudkeeper": Service("cloudkeeper", "images", 10030),
    "bdii": Service("bdii", "bdii", 10040),
    "accounting": Service("accounting", "accounting", 990),
    "glancesync": Service("glancesync", "regions", 10050),
    "appliance": Service("appliance", None, None),
}


def by_section(section: str) -> Service:
    """The service an appliance.yaml section configures."""
    for service in SERVICES.values():
        if service.section == section:
            return service
    raise KeyError(f"no service is configured by section {section!r}")
