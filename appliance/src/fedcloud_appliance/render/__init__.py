"""Each service's settings, rendered from the one appliance file.

The supervisor (and compose's one-shot ``render``) writes these into the
shared ``config`` volume, which the services mount read-only at
``fedcloud_common.services.RENDERED_DIR``. One module per service builds
its settings; secrets are staged per service (``stage.py``) and no secret
is ever written into a settings file.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from fedcloud_appliance.config import ApplianceConfig
from fedcloud_appliance.render import accounting, bdii, cloudkeeper, regions
from fedcloud_appliance.render.stage import Stage, stager
from fedcloud_common import settings
from fedcloud_common.files import write_atomically
from fedcloud_common.services import by_section

RENDER_DIR_ENV = "FEDCLOUD_RENDER_DIR"
DEFAULT_RENDER_DIR = Path("/var/lib/fedcloud-appliance/rendered")

# Config section -> renderer; a renderer's keys name files (``.json`` added).
RENDERERS: dict[str, Callable[[ApplianceConfig, Stage], dict[str, Any]]] = {
    "images": lambda config, stage: {"cloudkeeper": cloudkeeper.cloudkeeper(config, stage)},
    "bdii": lambda config, stage: {
        f"bdii/{role}": data for role, data in bdii.bdii(config, stage).items()
    },
    "accounting": lambda config, stage: {"accounting": accounting.accounting(config, stage)},
    "regions": lambda config, stage: {"glancesync": regions.glancesync(config, stage)},
}


def render_all(config: ApplianceConfig, out_dir: Path) -> list[Path]:
    """Write every enabled service's files (settings atomically) and secrets.

    The directory belongs to the renderer: files of services since disabled
    are removed, so no service reads a stale config or an old secret.
    """
    shutil.rmtree(out_dir / "secrets", ignore_errors=True)
    written = []
    for section, renderer in RENDERERS.items():
        if not getattr(config, section).enabled:
            continue
        uid = by_section(section).uid
        assert uid is not None  # every configured service runs as its own user
        stage = stager(out_dir / "secrets" / section, uid)
        for name, data in renderer(config, stage).items():
            target = out_dir / f"{name}.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, BaseModel):
                settings.write(data, target)
            else:  # a service whose settings have no model yet
                write_atomically(target, json.dumps(data, indent=2) + "\n")
            written.append(target)
    for stale in set(out_dir.rglob("*.json")) - set(written):
        stale.unlink()
    return written
