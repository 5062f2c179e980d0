"""The VO-to-project map (``voms.json``) a site may already keep for other tools.

Keystone-VOMS (its ``voms_policy`` file), cloudkeeper-os and atrope map each
VO to one project as ``{"<vo>": {"tenant": "<project>"}}``; cASO's
``mapping_file`` also reads ``{"<vo>": {"projects": ["<project>", ...]}}``
and the older ``"tenants"`` list. All of them are read here, unchanged:

- a VO's projects are ``projects`` if given, else ``tenant`` then ``tenants``;
- keys starting with ``/`` are Keystone-VOMS FQANs, a VO group's project
  rather than a VO's, and are skipped;
- other keys of an entry belong to the other tools and are ignored.

Every problem is reported at once, as ``<what is wrong>; <how to fix it>``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fedcloud_common.errors import ConfigError

EXAMPLE = '{"fedcloud.egi.eu": {"tenant": "<project>"}}'


class VoMapError(ConfigError):
    """Every problem of the VO map at once (one per line)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def read(path: Path) -> dict[str, list[str]]:
    """Each VO with its projects, in the file's order."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise VoMapError([f"{path} is not UTF-8 text; save it as UTF-8 JSON"]) from None
    except OSError as error:
        raise VoMapError(
            [f"cannot read {path} ({error.strerror}); make it readable by the appliance"]
        ) from None
    if not text.strip():
        raise VoMapError([f"{path} is empty; write the map, e.g. {EXAMPLE}, or remove the key"])
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise VoMapError(
            [
                f"not valid JSON at line {error.lineno}, column {error.colno}: {error.msg}; "
                "fix the file (python3 -m json.tool shows where)"
            ]
        ) from None
    if not isinstance(raw, dict):
        raise VoMapError(
            [f"must be a JSON object of VOs, e.g. {EXAMPLE}, not {_json_type(raw)}; fix the file"]
        )
    vos, problems = {}, []
    for vo, entry in raw.items():
        if vo.startswith("/"):
            continue
        try:
            vos[vo] = _projects(vo, entry)
        except ValueError as error:
            problems.append(str(error))
    if problems:
        raise VoMapError(problems)
    return vos


def _projects(vo: str, entry: Any) -> list[str]:
    if not vo.strip():
        raise ValueError('an empty VO name ("") has no meaning; remove that entry')
    if not isinstance(entry, dict):
        raise ValueError(
            f'VO {vo!r}: expected an object like {{"tenant": "<project>"}}, '
            f"not {_json_type(entry)}; fix that entry"
        )
    if "projects" in entry:
        projects = _names(vo, "projects", entry["projects"])
    else:
        tenant = [entry["tenant"]] if "tenant" in entry else []
        projects = _names(vo, "tenant", tenant) + _names(vo, "tenants", entry.get("tenants", []))
    if not projects:
        raise ValueError(
            f'VO {vo!r} names no project; give it "tenant": "<project>" '
            'or "projects": ["<project>", ...]'
        )
    return projects


def _names(vo: str, key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        want = "a project name or id" if key == "tenant" else "a list of project names or ids"
        shown = value[0] if key == "tenant" else value
        raise ValueError(f'VO {vo!r}: "{key}" must be {want}, not {shown!r}; fix that entry')
    return list(value)


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "true/false"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")
