"""atrope 2.0 and EGI's fork: atrope.conf and hepix.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fedcloud_appliance.migrate import Draft, ini

FORMATS = {"qcow2", "raw", "vmdk", "vdi"}


def read(directory: Path, root: Path, draft: Draft) -> None:
    conf = directory / "atrope.conf"
    sources = directory / "hepix.yaml"
    if conf.is_file():
        draft.read.append(str(conf))
        parser = ini.read(conf)
        sources = _conf(parser, conf, root, draft) or sources
    if sources.is_file():
        draft.read.append(str(sources))
        _lists(sources, draft)


def _conf(parser: Any, conf: Path, root: Path, draft: Draft) -> Path | None:
    """atrope.conf's settings; the hepix.yaml it names, under ``root``."""
    where = str(conf)
    auth = ini.credentials(parser, "glance", draft, "atrope")
    if auth:
        draft.setdefault(("openstack",), auth, where)
    images = draft.section("images")
    if parser.has_option("DEFAULT", "ca_path"):
        images.setdefault("ca_dir", parser.get("DEFAULT", "ca_path"))
    if parser.has_option("dispatchers", "prefix"):
        images.setdefault("prefix", parser.get("dispatchers", "prefix"))
    if parser.has_option("glance", "formats"):
        formats = [f.strip() for f in parser.get("glance", "formats").split(",") if f.strip()]
        images.setdefault("formats", [f for f in formats if f in FORMATS] or ["qcow2", "raw"])
        for unknown in sorted(set(formats) - FORMATS):
            draft.skip(f"{where} [glance] formats {unknown}", "Glance gets qcow2, raw, vmdk or vdi")
    if parser.has_option("glance", "tag"):
        tag = parser.get("glance", "tag")
        if tag != "atrope" and not tag.startswith("atrope-"):
            draft.skip(
                f"{where} [glance] tag {tag}",
                "adopt recognises atrope's images by a "
                "tag 'atrope' or 'atrope-*'; retag them before the first sync",
            )
    glance_done = ini.HANDLED | {"formats", "tag"}
    ini.leftovers(
        parser, "glance", glance_done, draft, where, "not a keystone option the appliance uses"
    )
    ini.leftovers(
        parser,
        "DEFAULT",
        {"ca_path"},
        draft,
        where,
        "atrope's own state; the appliance keeps its own",
    )
    ini.leftovers(
        parser,
        "dispatchers",
        {"prefix", "dispatcher"},
        draft,
        where,
        "the appliance always writes to Glance",
    )
    ini.other_sections(
        parser,
        {"glance", "dispatchers", "sources"},
        draft,
        where,
        "no such atrope setting in the appliance",
    )
    ini.leftovers(
        parser,
        "sources",
        {"hepix_sources"},
        draft,
        where,
        "the appliance reads signed HEPiX lists only",
    )
    if parser.has_option("sources", "hepix_sources"):
        named = Path(parser.get("sources", "hepix_sources"))
        return root / named.relative_to("/") if named.is_absolute() else conf.parent / named
    return None


def _lists(path: Path, draft: Draft) -> None:
    """hepix.yaml: name -> url, enabled, endorser, token, images, prefix, project."""
    where = str(path)
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    lists = draft.section("images").setdefault("lists", [])
    for name, source in raw.items():
        if any(existing["name"] == name for existing in lists):
            draft.skip(f"{where} {name}", f"a list named {name} is already there")
            continue
        entry: dict[str, Any] = {"name": str(name), "url": source.get("url")}
        if source.get("token"):
            entry["token_file"] = draft.secret(f"appdb-token-{name}", str(source["token"]))
        endorser = source.get("endorser") or {}
        if endorser.get("dn") and endorser.get("ca"):
            entry["endorser"] = {"dn": endorser["dn"], "ca": endorser["ca"]}
        for key in ("project", "prefix"):
            if source.get(key):
                entry[key] = source[key]
        if source.get("enabled") is False:
            entry["enabled"] = False
        entry["adopt"] = "atrope"  # and the list keeps its hepix.yaml name, which atrope stored
        if source.get("images"):
            draft.skip(
                f"{where} {name}.images",
                "the appliance replicates a whole list, not a selection of its images",
            )
        for key in sorted(
            set(source) - {"url", "enabled", "endorser", "token", "images", "prefix", "project"}
        ):
            draft.skip(f"{where} {name}.{key}", "no such list setting in the appliance")
        lists.append(entry)
