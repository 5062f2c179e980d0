"""What has to change in Glance for one list, and why: a pure function.

Both halves use it: the job to know what to download (and to print a dry
run), the backend to decide what to write against Glance as it is at that
moment. Only images carrying our tag and this list's name are considered, so
unmanaged images and other lists' images are out of reach by construction.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from fedcloud_cloudkeeper import conventions
from fedcloud_cloudkeeper.imagelist import Image, ImageList

LIST_PROPERTY = "fedcloud_image_list"
ID_PROPERTY = "APPLIANCE_ID"
CONTENT_PROPERTY = "fedcloud_content_digest"
METADATA_PROPERTY = "fedcloud_metadata_digest"
SHA512_PROPERTY = "image_hash"


@dataclasses.dataclass(frozen=True)
class Managed:
    """What we need to know of an image already in Glance."""

    id: str
    name: str
    status: str
    properties: Mapping[str, Any]
    created_at: str = ""

    @property
    def identifier(self) -> str:
        return str(self.properties.get(ID_PROPERTY, ""))


@dataclasses.dataclass(frozen=True)
class Target:
    """How one list entry should look in Glance."""

    image: Image
    name: str
    project: str | None
    properties: dict[str, str]
    min_ram: int
    min_disk: int

    @property
    def metadata_digest(self) -> str:
        return self.properties[METADATA_PROPERTY]


@dataclasses.dataclass(frozen=True)
class Action:
    verb: str  # add | replace | update | retire | clean | keep
    identifier: str
    reason: str
    target: Target | None = None
    existing: Managed | None = None

    def describe(self) -> str:
        name = self.target.name if self.target else (self.existing.name if self.existing else "")
        return f"{self.verb} {self.identifier} ({name}): {self.reason}"


def targets(
    image_list: ImageList, list_name: str, project: str | None, prefix: str
) -> dict[str, Target]:
    """Every entry of the list as it should be in Glance, by identifier."""
    made = {}
    for image in image_list.images:
        name = f"{prefix}{image.title}"[:255]
        properties = _properties(image, image_list, list_name)
        shape = {"properties": properties, "name": name, "project": project}
        properties[METADATA_PROPERTY] = hashlib.sha256(
            json.dumps(shape, sort_keys=True).encode()
        ).hexdigest()
        made[image.identifier] = Target(
            image=image,
            name=name,
            project=project,
            properties=properties,
            min_ram=image.ram_minimum,
            min_disk=0,
        )
    return made


def plan(
    wanted: Mapping[str, Target] | None,
    managed: Iterable[Managed],
    now: datetime.datetime,
    retire_reason: str = "",
) -> list[Action]:
    """Actions taking ``managed`` (this list's images) to ``wanted``.

    ``wanted`` None means the whole list goes (expired, or unsubscribed),
    for ``retire_reason``.
    """
    by_identifier: dict[str, list[Managed]] = {}
    actions = []
    for image in managed:
        if image.status in ("active", "deactivated"):
            by_identifier.setdefault(image.identifier, []).append(image)
        else:  # an upload that never finished (crash, 5xx): ours to clear
            actions.append(Action("clean", image.identifier, f"left {image.status}", None, image))
    for identifier, target in (wanted or {}).items():
        present = sorted(by_identifier.pop(identifier, []), key=lambda m: m.created_at)
        if target.image.expired(now):
            actions += [Action("retire", identifier, "image expired", None, m) for m in present]
            continue
        current = [
            m for m in present if m.properties.get(CONTENT_PROPERTY) == target.image.content_digest
        ]
        keep = current[-1] if current else None
        for stale in present:
            if stale is keep:
                continue
            reason = "new version uploaded" if keep else "replaced by a new version"
            actions.append(Action("retire", identifier, reason, target, stale))
        if keep is None:
            verb, reason = (
                ("replace", _what_changed(present[-1], target))
                if present
                else (
                    "add",
                    "new in the list",
                )
            )
            # Replacements go first: the new image is uploaded before the retirements above run.
            actions.insert(0, Action(verb, identifier, reason, target, None))
        elif (
            keep.status != "active"
            or keep.properties.get(METADATA_PROPERTY) != target.metadata_digest
        ):
            actions.append(Action("update", identifier, "metadata changed", target, keep))
        else:
            actions.append(Action("keep", identifier, "up to date", target, keep))
    reason = retire_reason or "no longer in the list"
    for identifier, leftover in by_identifier.items():
        actions += [Action("retire", identifier, reason, None, m) for m in leftover]
    order = {"clean": 0, "add": 1, "replace": 1, "update": 2, "retire": 3, "keep": 4}
    return sorted(actions, key=lambda a: order[a.verb])


def _what_changed(old: Managed, target: Target) -> str:
    attributes = json.loads(old.properties.get("APPLIANCE_ATTRIBUTES") or "{}")
    changed = [
        key
        for key in ("hv:version", "sl:checksum:sha512", "hv:uri", "hv:size")
        if str(attributes.get(key)) != str(target.image.raw.get(key))
    ]
    return "new version (" + (", ".join(changed) or "content") + " changed)"


def _properties(image: Image, image_list: ImageList, list_name: str) -> dict[str, str]:
    """The properties cloud-info-provider and cloudkeeper-os users read, plus ours."""
    expires = image.expires or image_list.expires
    values = {
        ID_PROPERTY: image.identifier,
        "APPLIANCE_IMAGE_LIST_ID": image_list.identifier,
        "APPLIANCE_TITLE": image.title,
        "APPLIANCE_DESCRIPTION": image.description,
        "APPLIANCE_MPURI": image.mpuri,
        "APPLIANCE_GROUP": image.group,
        "APPLIANCE_RAM": str(image.ram_minimum),
        "APPLIANCE_CORE": str(image.core_minimum),
        "APPLIANCE_VERSION": image.version,
        "APPLIANCE_ARCHITECTURE": image.arch,
        "APPLIANCE_OPERATING_SYSTEM": image.os_name,
        "APPLIANCE_VO": image_list.vo or "",
        "APPLIANCE_EXPIRATION_DATE": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "APPLIANCE_ATTRIBUTES": json.dumps(image.raw, sort_keys=True),
        "vmcatcher_event_ad_mpuri": image.mpuri,
        "vmcatcher_event_dc_title": image.title,
        "vmcatcher_event_dc_description": image.description,
        "vmcatcher_event_hv_version": image.version,
        "os_distro": image.os_name.lower().replace(" ", ""),
        "os_version": image.os_version,
        "architecture": image.arch,
        LIST_PROPERTY: list_name,
        CONTENT_PROPERTY: image.content_digest,
        SHA512_PROPERTY: f"sha512:{image.sha512}",
    } | conventions.written(image, image_list, list_name)
    return {key: value for key, value in values.items() if value != ""}
