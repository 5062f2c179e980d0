"""cloud-info-provider's site YAML: the GOCDB site name and the VOs' projects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fedcloud_appliance.migrate import Draft


def read(path: Path, draft: Draft) -> None:
    """1.x (``gocdb``, ``endpoint``, ``vos``) and 0.x (``site``, ``compute.shares``)."""
    if not path.is_file():
        return
    draft.read.append(str(path))
    where = str(path)
    raw: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    site = raw.get("gocdb") or (raw.get("site") or {}).get("name")
    if site:
        draft.setdefault(("site", "name"), site, where)
    shares: dict[str, Any] = {
        vo["name"]: vo for vo in raw.get("vos") or [] if isinstance(vo, dict) and "name" in vo
    }
    shares |= (raw.get("compute") or {}).get("shares") or {}
    vos = draft.section("bdii", "vos")
    for vo, share in shares.items():
        project = (share.get("auth") or {}).get("project_id")
        if project:
            vos.setdefault(vo, {"project": project})
        else:
            draft.skip(f"{where} {vo}", "no auth.project_id for this VO")
    for key in sorted(set(raw) - {"gocdb", "site", "vos", "compute", "endpoint"}):
        draft.skip(f"{where} {key}", "cloud-info-provider's own; the appliance renders it")
