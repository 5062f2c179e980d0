"""cloudkeeper + cloudkeeper-os 0.9: image-lists.conf, cloudkeeper-os.conf, mapping.json."""

from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import Path
from typing import Any

from fedcloud_appliance.migrate import APPDB_ENDORSER, Draft, ini

# AppDB's VO-wide lists: https://vmcaster.appdb.egi.eu/store/vo/<vo>/image.list
VO_LIST = re.compile(r"/store/vo/([^/]+)/image\.list$")


def read(directory: Path, draft: Draft) -> None:
    mapping = _mapping(directory, draft)
    conf = _first(directory, "cloudkeeper-os.conf")
    if conf:
        draft.read.append(str(conf))
        parser = ini.read(conf)
        auth = ini.credentials(parser, "keystone_authtoken", draft, "cloudkeeper-os")
        if auth:
            draft.setdefault(("openstack",), auth, str(conf))
        ini.leftovers(
            parser,
            "keystone_authtoken",
            ini.HANDLED,
            draft,
            str(conf),
            "not a keystone option the appliance uses",
        )
        ini.leftovers(
            parser,
            "DEFAULT",
            {"mapping_file"},
            draft,
            str(conf),
            "cloudkeeper-os' own behaviour (the appliance shares a list's images "
            "with its VO's project, keeps downloads in images.store)",
        )
        ini.other_sections(
            parser,
            {"keystone_authtoken"},
            draft,
            str(conf),
            "no such cloudkeeper-os setting in the appliance",
        )
    lists_conf = _first(directory, "image-lists.conf")
    if lists_conf:
        draft.read.append(str(lists_conf))
        for line in lists_conf.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                _add_list(line, mapping, draft, str(lists_conf))
    for vo, project in mapping.items():
        draft.section("bdii", "vos").setdefault(vo, {"project": project})


def _first(directory: Path, name: str) -> Path | None:
    """cloudkeeper-os' files may be in /etc/cloudkeeper or /etc/cloudkeeper-os."""
    for candidate in (directory / name, directory.with_name("cloudkeeper-os") / name):
        if candidate.is_file():
            return candidate
    return None


def _mapping(directory: Path, draft: Draft) -> dict[str, str]:
    """mapping.json: VO -> {"project": ...} (or "tenant")."""
    path = _first(directory, "mapping.json")
    if path is None:
        return {}
    draft.read.append(str(path))
    found: dict[str, str] = {}
    for vo, entry in json.loads(path.read_text(encoding="utf-8")).items():
        project = entry.get("project") or entry.get("tenant") if isinstance(entry, dict) else None
        if project:
            found[vo] = str(project)
        else:
            draft.skip(f"{path} {vo}", "no project (or tenant) for this VO")
        if isinstance(entry, dict) and entry.get("domain"):
            draft.skip(f"{path} {vo}.domain", "projects are found in the appliance user's domain")
    return found


def _add_list(line: str, mapping: dict[str, str], draft: Draft, where: str) -> None:
    parts = urllib.parse.urlsplit(line)
    netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    url = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    vo_match = VO_LIST.search(parts.path)
    vo = vo_match.group(1) if vo_match else None
    slug = re.sub(r"[^A-Za-z0-9]+", "-", vo or f"{parts.hostname}{parts.path}").strip("-")
    entry: dict[str, Any] = {"name": slug[-64:].lstrip("-._") or "list", "url": url}
    if parts.username:
        token = urllib.parse.unquote(parts.username)
        entry["token_file"] = draft.secret(f"appdb-token-{entry['name']}", token)
    if vo:
        entry["vo"] = vo
        if vo in mapping:
            entry["project"] = mapping[vo]
    entry["adopt"] = "cloudkeeper-os"
    lists = draft.section("images").setdefault("lists", [])
    if any(existing["name"] == entry["name"] for existing in lists):
        draft.skip(f"{where} {url}", f"a list named {entry['name']} is already there")
        return
    lists.append(entry)
    if "endorser" not in draft.section("images"):
        draft.section("images")["endorser"] = dict(APPDB_ENDORSER)
        draft.notes.append(
            "images.endorser: cloudkeeper did not check who signed its lists; set to EGI "
            "AppDB's signer: check it is the one your lists are signed by"
        )
