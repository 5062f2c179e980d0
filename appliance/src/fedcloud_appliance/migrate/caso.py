"""cASO: caso.conf, and the voms.json VO map it (and Keystone-VOMS) shares."""

from __future__ import annotations

import datetime
import shutil
from pathlib import Path

from fedcloud_appliance.migrate import Draft, ini
from fedcloud_common.settings.accounting import EXTRACTOR_OF

# Read here on purpose, so not named as left over.
DEFAULTS_READ = {"site_name", "projects", "mapping_file", "extractor", "vo_property"}


def mapping_file(conf: Path) -> Path | None:
    """The voms.json caso.conf names (a host path), if it names one."""
    if not conf.is_file():
        return None
    named = ini.read(conf).defaults().get("mapping_file")
    return Path(named) if named else None


def read(conf: Path, voms: Path | None, draft: Draft, today: datetime.date) -> None:
    """caso.conf's site and projects; voms.json copied beside appliance.yaml."""
    if not conf.is_file():
        draft.section("accounting")["enabled"] = False
        draft.notes.append(f"accounting: no {conf}: accounting is off; enable it by hand")
        return
    draft.read.append(str(conf))
    parser = ini.read(conf)
    where = str(conf)
    get = parser.defaults().get
    if get("site_name"):
        draft.setdefault(("site", "name"), get("site_name"), where)
    caso = draft.section("accounting", "caso")
    projects = [p.strip() for p in (get("projects") or "").split(",") if p.strip()]
    if projects:
        caso["projects"] = projects
    extractors = {e.strip() for e in (get("extractor") or "nova").split(",") if e.strip()}
    # The record types of the old extractors (nova gives cloud and accelerator records).
    kinds = [kind for kind, extractor in EXTRACTOR_OF.items() if extractor in extractors]
    caso["record_types"] = kinds or ["cloud"]
    if get("vo_property"):
        caso["vo_property"] = get("vo_property")
    caso["start_date"] = today.isoformat()
    draft.notes.append(
        "accounting.caso.start_date: today; the old cASO already sent what came before "
        "(move it back only if its last runs failed)"
    )
    auth = ini.credentials(parser, "keystone_auth", draft, "caso")
    top = draft.config.get("openstack")
    if auth and top is None:
        draft.config["openstack"] = auth
    elif auth and top is not None and auth.get("username") != top.get("username"):
        draft.section("accounting")["openstack"] = auth
    ini.leftovers(
        parser,
        "keystone_auth",
        ini.HANDLED,
        draft,
        where,
        "not a keystone option the appliance uses",
    )
    ini.leftovers(
        parser,
        "DEFAULT",
        DEFAULTS_READ,
        draft,
        where,
        "cASO runs inside the appliance with its own spool and messenger",
    )
    ini.other_sections(
        parser,
        {"keystone_auth"},
        draft,
        where,
        "cASO runs inside the appliance, which sends its records itself",
    )
    path = voms
    if path is not None and path.is_file():
        draft.read.append(str(path))
        draft.config_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, draft.config_dir / "voms.json")
        draft.section("bdii")["vo_map_file"] = str(draft.config_dir / "voms.json")
