"""Taking over the images cloudkeeper-os or atrope left in Glance: pure decisions.

A site moving to the appliance has those tools' images in service; without
this, the first sync uploads a second copy of each. For a list with
``adopt`` set, an old tool's image for the same list and identifier is
taken over: with the same content (SHA-512) it keeps its id and gets our
tag and properties; with other content it becomes ours as an older version,
which the usual plan replaces and retires. Two old images for one
identifier are left alone and reported: we cannot tell which one users
mean. The job calls ``match`` to download and dry-run correctly; the
backend calls it again against Glance as it is, then ``apply``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from fedcloud_cloudkeeper import conventions
from fedcloud_cloudkeeper.conventions import Tool
from fedcloud_cloudkeeper.plan import (
    ID_PROPERTY,
    LIST_PROPERTY,
    METADATA_PROPERTY,
    Action,
    Managed,
    Target,
)
from fedcloud_common.faults import explain
from fedcloud_common.imagestatus import ImageOutcome

if TYPE_CHECKING:
    from fedcloud_cloudkeeper.glance import Glance

LOG = logging.getLogger(__name__)

TOOLS: dict[str, tuple[Tool, ...]] = {
    "cloudkeeper-os": ("cloudkeeper-os",),
    "atrope": ("atrope",),
    "auto": ("cloudkeeper-os", "atrope"),
}


@dataclasses.dataclass(frozen=True)
class Adopted:
    """One old image taken over for one list entry."""

    identifier: str
    tool: Tool
    image: Managed
    same_content: bool

    @property
    def reason(self) -> str:
        how = (
            "same content: tagged and described as ours, same id, nothing uploaded"
            if self.same_content
            else "other content: taken over as the previous version, replaced and retired"
        )
        return f"placed by {self.tool} as {self.image.id}; {how}"


@dataclasses.dataclass(frozen=True)
class Ambiguous:
    """Old images we may not take over for one list entry: none is touched, and
    nothing is uploaded for it (that would be the duplicate adoption avoids).

    Either several claim it, or the one there is owned by another project
    (cloudkeeper-os 0.9 uploaded into each VO's project): Glance lets only
    the owner change an image, and the appliance manages its own project's.
    """

    identifier: str
    images: tuple[tuple[Tool, Managed], ...]
    owner: str | None = None  # the other project owning the one old image

    @property
    def reason(self) -> str:
        ids = ", ".join(f"{image.id} ({tool})" for tool, image in self.images)
        if self.owner is not None:
            return (
                f"image {self.identifier}: not adopted, the old image {ids} is owned by "
                f"project {self.owner}, not the appliance's; left alone and not uploaded: "
                f"give it to the appliance's project (openstack image set --project PROJECT "
                f"{self.images[0][1].id}, as admin), then sync"
            )
        return (
            f"image {self.identifier}: not adopted, {len(self.images)} old images claim it "
            f"({ids}); left alone and not uploaded: delete or untag all but one, then sync"
        )


@dataclasses.dataclass(frozen=True)
class Adoption:
    adopted: dict[str, Adopted]
    ambiguous: dict[str, Ambiguous]

    def wanted(self, wanted: Mapping[str, Target]) -> dict[str, Target]:
        """The list entries the plan handles: the ambiguous ones wait for the admin."""
        return {key: target for key, target in wanted.items() if key not in self.ambiguous}

    def as_managed(self, wanted: Mapping[str, Target]) -> list[Managed]:
        """The adopted images as the plan will find them once ``apply`` ran."""
        return [_as_ours(a, wanted[a.identifier]) for a in self.adopted.values()]

    def actions(self, wanted: Mapping[str, Target]) -> list[Action]:
        return [
            Action("adopt", a.identifier, a.reason, wanted[a.identifier], a.image)
            for a in self.adopted.values()
        ]

    def problems(self) -> list[str]:
        return [a.reason for a in self.ambiguous.values()]


def match(
    mode: str,
    list_name: str,
    list_id: str,
    wanted: Mapping[str, Target],
    managed: Iterable[Managed],
    foreign: Iterable[Managed],
    elsewhere: Iterable[Managed] = (),
    project: str | None = None,
) -> Adoption:
    """Which old images (``foreign``: untagged, in our project) this list takes over.

    ``elsewhere`` are those owned by the list's ``project``: they count, but
    can only be reported. Only entries we do not manage yet are considered,
    and only old images in service: cloudkeeper-os' EOL ones are on their
    way out.
    """
    ours = {image.identifier for image in managed}
    claims: dict[str, list[tuple[Tool, Managed]]] = {}
    theirs = {image.id for image in elsewhere}
    for image in [*foreign, *elsewhere]:
        tool = conventions.placed_by(image.properties)
        if tool not in TOOLS[mode] or image.status != "active":
            continue
        if image.properties.get(conventions.STATUS_PROPERTY) == conventions.EOL:
            continue
        if not conventions.belongs_to(image.properties, tool, list_name, list_id):
            continue
        identifier = conventions.identifier(image.properties, tool)
        if identifier in wanted and identifier not in ours:
            claims.setdefault(identifier, []).append((tool, image))
    adopted, ambiguous = {}, {}
    for identifier, found in sorted(claims.items()):
        if len(found) > 1:
            ambiguous[identifier] = Ambiguous(identifier, tuple(found))
            continue
        ((tool, image),) = found
        if image.id in theirs:
            ambiguous[identifier] = Ambiguous(identifier, tuple(found), project or "?")
            continue
        same = conventions.sha512(image.properties) == wanted[identifier].image.sha512
        adopted[identifier] = Adopted(identifier, tool, image, same)
    return Adoption(adopted, ambiguous)


def ours(adopted: Adopted, target: Target) -> dict[str, str]:
    """The properties an adopted image gets before our tag makes it ours.

    With the same content, all of the target's but the metadata digest, so
    the plan's update writes the rest (name, sharing) and records it; with
    other content, only what makes it this entry's previous version.
    """
    if adopted.same_content:
        return {k: v for k, v in target.properties.items() if k != METADATA_PROPERTY}
    return {ID_PROPERTY: adopted.identifier, LIST_PROPERTY: str(target.properties[LIST_PROPERTY])}


def _as_ours(adopted: Adopted, target: Target) -> Managed:
    return dataclasses.replace(adopted.image, properties=ours(adopted, target))


@dataclasses.dataclass(frozen=True)
class Orphan:
    """An old tool's image for a list this site no longer subscribes to."""

    tool: Tool
    list: str
    image: Managed

    @property
    def identifier(self) -> str:
        return conventions.identifier(self.image.properties, self.tool)


def orphans(
    modes: Iterable[str], names: set[str], list_ids: set[str], foreign: Iterable[Managed]
) -> list[Orphan]:
    """The old tools' images whose list is not among the subscribed ones.

    atrope's lists are known by ``names``, cloudkeeper-os' by ``list_ids``
    (the subscribed lists' dc:identifier, from their last trusted copy).
    """
    tools = {tool for mode in modes for tool in TOOLS[mode]}
    found = []
    for image in foreign:
        tool = conventions.placed_by(image.properties)
        if tool is None or tool not in tools:
            continue
        key = "image_list" if tool == "atrope" else "APPLIANCE_IMAGE_LIST_ID"
        label = str(image.properties.get(key) or "")
        if label not in (names if tool == "atrope" else list_ids):
            found.append(Orphan(tool, label, image))
    return sorted(found, key=lambda o: (o.tool, o.list, o.identifier, o.image.id))


def take_over(
    glance: Glance,
    mode: str,
    list_name: str,
    list_id: str,
    wanted: Mapping[str, Target],
    managed: list[Managed],
    project: str | None = None,
) -> tuple[dict[str, Target], dict[str, ImageOutcome]]:
    """Adopt against Glance as it is now (the backend's half).

    Returns the entries left for the plan and an outcome per entry adoption
    decided: adopted (the plan's outcome is added to it), or left alone and
    why. An entry whose adoption failed is left out of the plan too: an
    upload would make exactly the duplicate adoption is there to avoid.
    """
    elsewhere = glance.foreign(project) if project else []
    adoption = match(
        mode, list_name, list_id, wanted, managed, glance.foreign(), elsewhere, project
    )
    outcomes = {
        key: ImageOutcome(state="error", reason=a.reason, action="adopt")
        for key, a in adoption.ambiguous.items()
    }
    left = adoption.wanted(wanted)
    for key, adopted in adoption.adopted.items():
        try:
            glance.adopt(adopted.image, ours(adopted, wanted[key]))
        except Exception as error:  # Glance/SDK errors: this entry waits for the next run
            reason = f"adopting {adopted.image.id} from {adopted.tool} failed: {explain(error)}"
            LOG.error("%s: %s", list_name, reason)
            outcomes[key] = ImageOutcome(state="error", reason=reason, action="adopt")
            del left[key]
            continue
        LOG.info("%s: adopted %s: %s", list_name, key, adopted.reason)
        outcomes[key] = ImageOutcome(
            state="ok",
            reason=f"adopted, {adopted.reason}",
            action="adopt",
            glance_id=adopted.image.id,
        )
    return left, outcomes


def merged(
    adopted: dict[str, ImageOutcome], results: dict[str, ImageOutcome]
) -> dict[str, ImageOutcome]:
    """The plan's outcomes, each adopted entry's saying it was adopted first."""
    merged = dict(results)
    for key, outcome in adopted.items():
        after = results.get(key)
        if outcome.state != "ok" or after is None:
            merged[key] = outcome
        else:
            merged[key] = after.model_copy(update={"reason": f"{outcome.reason}; {after.reason}"})
    return merged


def retire_orphans(glance: Glance, wanted: Mapping[str, str]) -> dict[str, ImageOutcome]:
    """Retire the old tools' images cleanup --retire-old named, if still theirs."""
    still = {
        image.id: image for image in glance.foreign() if conventions.placed_by(image.properties)
    }
    outcomes = {}
    for image_id, reason in sorted(wanted.items()):
        image = still.get(image_id)
        if image is None:
            outcomes[image_id] = ImageOutcome(
                state="ok",
                reason=f"{reason}: already gone or no longer an old tool's",
                action="retire",
            )
            continue
        try:
            how = glance.retire(image)
        except Exception as error:  # Glance/SDK errors: reported; the next cleanup retries
            outcomes[image_id] = ImageOutcome(state="error", reason=explain(error), action="retire")
            continue
        outcomes[image_id] = ImageOutcome(
            state="ok", reason=f"{reason}: {how}", action="retire", glance_id=image_id
        )
    return outcomes
