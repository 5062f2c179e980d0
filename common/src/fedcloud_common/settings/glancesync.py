"""Multi-region image sync's settings: what the render step writes for
``fedcloud-glancesync`` (``glancesync.json``) and what it loads.

The policy models (``Selection``, ``Conflicts``, ``Policy``) are shared with
appliance.yaml's ``regions`` section so that what the appliance accepts is
exactly what the sync runs. Every choice GlanceSync made with a Python
expression is a declarative rule here: nothing in a config file is ever
evaluated as code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from fedcloud_common.model import Model
from fedcloud_common.openstack import Credentials

ANY = "any"
OBSOLETE_SUFFIX = "_obsolete"
# The Glance tag image replication (cloudkeeper) marks its images with.
MANAGED_TAG = "fedcloud-appliance"


def _checksum_list(values: list[str]) -> list[str]:
    for value in values:
        if value != ANY and not (value.isalnum() and len(value) in (32, 128)):
            raise ValueError(
                f"{value!r} is neither 'any' nor a checksum: give the target image's MD5 "
                "(32 hex digits) or SHA-512 (128 hex digits), as Glance shows it"
            )
    return [value.lower() for value in values]


Checksums = Annotated[list[str], AfterValidator(_checksum_list)]


class Condition(Model):
    """Which master images a target wants, as a rule (GlanceSync's
    ``metadata_condition`` without the Python): every given clause must hold."""

    public: bool = Field(
        True, description="true: only public images (GlanceSync's image.is_public)"
    )
    any_property: list[str] | None = Field(
        None,
        description="the image has at least one of these properties; none: those of "
        "metadata_set (no requirement when metadata_set is empty), GlanceSync's default",
    )
    properties: dict[str, str] = Field(
        {}, description="properties the image must have with exactly these values"
    )
    tags: list[str] = Field([], description="Glance tags the image must all carry")


class Selection(Model):
    """How a target's images are chosen, GlanceSync's forcesyncs/metadata_* keys."""

    select: Literal["condition", "managed", "forcesyncs"] = Field(
        "condition",
        description="condition: images the condition selects; managed: every image image "
        "replication manages (the images.tag tag); forcesyncs: only the forcesyncs ids "
        "(GlanceSync's metadata_condition=False)",
    )
    condition: Condition = Field(Condition(), description="the rule when select is condition")
    forcesyncs: list[str] = Field(
        [], description="master image ids synced unconditionally, even private ones"
    )
    metadata_set: list[str] = Field(
        [],
        description="properties copied to the targets (and, by default, those that select an "
        "image); empty: every property",
    )


class Conflicts(Model):
    """What to do with a target image of the same name and other content.

    Checked in GlanceSync's order: dontupdate, rename, replace, replace 'any',
    rename 'any'; otherwise the image is stalled (error_checksum).
    """

    dontupdate: Checksums = Field(
        [], description="target checksums left alone (status ok_stalled_checksum)"
    )
    rename: Checksums = Field(
        [],
        description="target checksums (or 'any') whose image is renamed NAME.old, made private, "
        "and the master's uploaded",
    )
    replace: Checksums = Field(
        [], description="target checksums (or 'any') whose image is replaced by the master's"
    )


class Policy(Model):
    """Everything GlanceSync sets per target (or in [DEFAULT])."""

    selection: Selection = Field(Selection(), description="which master images are synced")
    conflicts: Conflicts = Field(Conflicts(), description="same name, other content: what to do")
    only_tenant_images: bool = Field(
        True,
        description="true: a target's images of other projects are ignored (name clashes "
        "with other users' public images are warned about, never touched)",
    )
    support_obsolete_images: bool = Field(
        True,
        description="propagate an image's _obsolete rename, visibility and obsolete_syncprops",
    )
    obsolete_syncprops: list[str] = Field(
        [], description="properties copied to obsolete images besides name and visibility"
    )
    list_images_timeout_s: float = Field(
        30, gt=0, le=3600, description="seconds listing one region's images may take"
    )


class Target(Model):
    """Regions sharing one Keystone (GlanceSync's target)."""

    openstack: Credentials = Field(description="credentials of this target's Keystone")
    regions: list[str] | None = Field(
        None, description="the regions synced; none: every region with Glance in the catalog"
    )
    ignore_regions: list[str] = Field([], description="regions left out of the catalog's")
    policy: Policy = Field(Policy(), description="selection, conflicts and obsolete handling")


class GlanceSyncSettings(Model):
    master_region: str = Field(description="the region whose images are copied")
    master: Credentials = Field(description="credentials of the master's Keystone")
    targets: dict[str, Target] = Field(
        description="target name -> target; 'master' is the master's own Keystone"
    )
    parallelism: int = Field(2, ge=1, le=32, description="regions synced at the same time")
    state_dir: Path = Field(
        Path("/var/lib/fedcloud-glancesync"),
        description="status.json, one log per region and run, backups, the read-once cache",
    )
    cache_bytes: int = Field(
        8 * 1024**3,
        ge=0,
        description="bytes of master images kept on disk while regions still need them",
    )

    managed_tag: str = Field(
        MANAGED_TAG, min_length=1, description="the tag select: managed looks for (images.tag)"
    )

    @model_validator(mode="after")
    def _target_names_are_prefixes(self) -> GlanceSyncSettings:
        for name in self.targets:
            if not name or ":" in name:
                raise ValueError(f"target name {name!r}: give a name without ':'")
        return self
