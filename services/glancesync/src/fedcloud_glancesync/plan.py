"""GlanceSync's algorithm as pure functions: which master images a target
wants, and what each region needs, without touching any Glance.

Kept free of I/O so the status command, ``--dry-run`` and the sync itself
decide from the same code, and so the decision is what the tests pin down.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable
from typing import Literal

from fedcloud_common.settings.glancesync import ANY, OBSOLETE_SUFFIX, Condition, Policy
from fedcloud_glancesync.images import Image, checksums_of, same_content

Status = Literal[
    "ok",
    "ok_stalled_checksum",
    "error_checksum",
    "pending_metadata",
    "pending_upload",
    "pending_replace",
    "pending_rename",
]
UPLOADS: tuple[Status, ...] = ("pending_upload", "pending_replace", "pending_rename")


@dataclasses.dataclass(frozen=True)
class Decision:
    """One selected master image in one region."""

    master: Image
    status: Status
    existing: Image | None = None  # the region's image of that name it was compared with
    properties: dict[str, str] = dataclasses.field(default_factory=dict)  # to set
    visibility: str | None = None  # to set


@dataclasses.dataclass(frozen=True)
class ObsoleteUpdate:
    """An obsolete master image's rename, visibility and properties, propagated."""

    master: Image
    existing: Image
    name: str | None
    visibility: str | None
    properties: dict[str, str]


@dataclasses.dataclass
class RegionPlan:
    region: str
    decisions: list[Decision]
    obsolete: list[ObsoleteUpdate]
    warnings: list[str]

    def uploads(self) -> list[Decision]:
        """What needs the master's data, smallest first (GlanceSync's order)."""
        todo = [d for d in self.decisions if d.status in UPLOADS]
        return sorted(todo, key=lambda d: (d.master.size, d.master.name))

    def metadata(self) -> list[Decision]:
        return [d for d in self.decisions if d.status == "pending_metadata"]


def selects(image: Image, condition: Condition, metadata_set: list[str]) -> bool:
    """GlanceSync's condition, as a rule: public, and metadata_set meets the properties."""
    if condition.public and not image.is_public:
        return False
    wanted = condition.any_property if condition.any_property is not None else metadata_set
    if wanted and not set(wanted) & image.properties.keys():
        return False
    if any(image.properties.get(k) != v for k, v in condition.properties.items()):
        return False
    return all(tag in image.tags for tag in condition.tags)


def duplicates(images: Iterable[Image]) -> dict[str, list[Image]]:
    by_name: dict[str, list[Image]] = collections.defaultdict(list)
    for image in images:
        by_name[image.name].append(image)
    return {name: found for name, found in by_name.items() if len(found) > 1}


def master_candidates(images: list[Image], project: str) -> list[Image]:
    """The master's own active images: other projects' are never synced."""
    return [i for i in images if i.owner == project and i.status == "active"]


def select(master: list[Image], policy: Policy, managed_tag: str) -> tuple[list[Image], list[str]]:
    """The master images this target syncs, and warnings (duplicate names)."""
    warnings = []
    twins = duplicates(master)
    for name, found in sorted(twins.items()):
        ids = ", ".join(i.id for i in found)
        warnings.append(f"master has {len(found)} images named {name!r} ({ids}): none is synced")
    selection = policy.selection
    chosen = []
    for image in master:
        if image.name.endswith(OBSOLETE_SUFFIX) or image.name in twins:
            continue
        if image.id in selection.forcesyncs:
            chosen.append(image)
        elif selection.select == "managed":
            if managed_tag in image.tags:
                chosen.append(image)
        elif selection.select == "condition" and selects(
            image, selection.condition, selection.metadata_set
        ):
            chosen.append(image)
    return chosen, warnings


def _metadata_changes(
    master: Image, existing: Image, keys: list[str]
) -> tuple[dict[str, str], str | None]:
    names = keys or sorted(master.properties)
    properties = {
        key: master.properties[key]
        for key in names
        if key in master.properties and existing.properties.get(key) != master.properties[key]
    }
    visibility = master.visibility if master.visibility != existing.visibility else None
    return properties, visibility


def _conflict(existing: Image, policy: Policy) -> Status:
    sums = checksums_of(existing)
    rules = policy.conflicts
    if sums & set(rules.dontupdate):
        return "ok_stalled_checksum"
    if sums & set(rules.rename):
        return "pending_rename"
    if sums & set(rules.replace):
        return "pending_replace"
    if ANY in rules.replace:
        return "pending_replace"
    if ANY in rules.rename:
        return "pending_rename"
    return "error_checksum"


def plan_region(
    region: str,
    selected: list[Image],
    master_all: list[Image],
    region_images: list[Image],
    project: str,
    policy: Policy,
) -> RegionPlan:
    """What one region needs, GlanceSync's way (see the README for the rules)."""
    warnings: list[str] = []
    ours = [i for i in region_images if i.owner == project]
    others = [i for i in region_images if i.owner != project]
    considered = ours if policy.only_tenant_images else region_images
    for name, found in sorted(duplicates(considered).items()):
        warnings.append(f"{region} has {len(found)} images named {name!r}")
    by_name: dict[str, list[Image]] = collections.defaultdict(list)
    for image in considered:
        by_name[image.name].append(image)
    clash_names = {i.name for i in others if i.is_public}
    decisions = []
    for master in selected:
        if policy.only_tenant_images and master.name in clash_names:
            warnings.append(
                f"{region}: a public image of another project is also named {master.name!r}"
            )
        found = by_name.get(master.name, [])
        if not found:
            decisions.append(Decision(master, "pending_upload"))
            continue
        existing = next((i for i in found if same_content(master, i)), found[0])
        if same_content(master, existing):
            properties, visibility = _metadata_changes(
                master, existing, policy.selection.metadata_set
            )
            status: Status = "pending_metadata" if properties or visibility else "ok"
            decisions.append(Decision(master, status, existing, properties, visibility))
        else:
            decisions.append(Decision(master, _conflict(existing, policy), existing))
    obsolete = (
        _obsolete(selected, master_all, considered, project, policy)
        if policy.support_obsolete_images
        else []
    )
    return RegionPlan(region, decisions, obsolete, warnings)


def _obsolete(
    selected: list[Image],
    master_all: list[Image],
    region_images: list[Image],
    project: str,
    policy: Policy,
) -> list[ObsoleteUpdate]:
    """Renames, visibility and obsolete_syncprops of ``_obsolete`` master images.

    GlanceSync's checks: same content only; never another project's public
    image; and not when a synced master image still has the plain name.
    """
    synced_names = {i.name for i in selected}
    updates = []
    for master in master_all:
        if not master.name.endswith(OBSOLETE_SUFFIX):
            continue
        plain = master.name.removesuffix(OBSOLETE_SUFFIX)
        if plain in synced_names:
            continue
        for existing in region_images:
            if existing.name not in (plain, master.name):
                continue
            if existing.owner != project and existing.is_public:
                continue
            if not same_content(master, existing):
                continue
            properties = {
                key: master.properties[key]
                for key in policy.obsolete_syncprops
                if key in master.properties
                and existing.properties.get(key) != master.properties[key]
            }
            name = master.name if existing.name != master.name else None
            visibility = master.visibility if existing.visibility != master.visibility else None
            if name or visibility or properties:
                updates.append(ObsoleteUpdate(master, existing, name, visibility, properties))
    return updates
