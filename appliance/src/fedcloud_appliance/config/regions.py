"""appliance.yaml's ``regions``: one master region's images kept in other
regions and other clouds (what GlanceSync does, without its eval, its read
of Glance's disk and its one-region-at-a-time sync).

Per-target keys fall back, key by key, on ``regions.defaults`` (GlanceSync's
``[DEFAULT]``). The policy types are those of
``fedcloud_common.settings.glancesync``, so what this section accepts is what
the sync runs. An existing GlanceSync config file is accepted as
``glancesync_conf`` (see config/glancesync_ini.py).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, model_validator

from fedcloud_appliance.config.base import Cron, Section
from fedcloud_common.openstack import Credentials
from fedcloud_common.settings.glancesync import Conflicts, Policy, Selection

MASTER_TARGET = "master"


class RegionsMaster(Section):
    openstack: Credentials | None = Field(
        None,
        description="the master's Keystone (a password, application credential or clouds.yaml "
        "entry); none: the top-level openstack section",
    )
    region: str = Field(min_length=1, description="the region whose images are copied")


class RegionTarget(Section):
    """Regions sharing one Keystone (a GlanceSync target); unset keys: regions.defaults."""

    openstack: Credentials | None = Field(
        None, description="this target's Keystone; none: the master's (its other regions)"
    )
    regions: list[str] | None = Field(
        None, description="the regions synced; none: every region with a Glance in the catalog"
    )
    ignore_regions: list[str] = Field([], description="catalog regions left out")
    selection: Selection | None = Field(None, description="which images; unset: the defaults'")
    conflicts: Conflicts | None = Field(None, description="unset: the defaults'")
    only_tenant_images: bool | None = Field(None, description="unset: the defaults'")
    support_obsolete_images: bool | None = Field(None, description="unset: the defaults'")
    obsolete_syncprops: list[str] | None = Field(None, description="unset: the defaults'")
    list_images_timeout_s: float | None = Field(None, gt=0, description="unset: the defaults'")

    def policy(self, defaults: Policy) -> Policy:
        """The defaults with every key this target sets (nested keys one by one)."""
        return _merged(defaults, self)


def _merged(base: BaseModel, override: BaseModel) -> Policy:
    updates: dict[str, object] = {}
    for name in type(base).model_fields:
        if name not in override.model_fields_set:
            continue
        value = getattr(override, name)
        if value is None:
            continue
        current = getattr(base, name)
        if isinstance(value, BaseModel) and isinstance(current, BaseModel):
            value = current.model_copy(
                update={k: getattr(value, k) for k in value.model_fields_set}
            )
        updates[name] = value
    merged = base.model_copy(update=updates)
    assert isinstance(merged, Policy)
    return Policy.model_validate(merged.model_dump())


class Regions(Section):
    enabled: bool = Field(
        False, description="true: the region-sync job keeps the targets' Glances in sync"
    )
    schedule: Cron = Field("30 */4 * * *", description="when region-sync runs (cron, UTC)")
    master: RegionsMaster | None = Field(None, description="where the images come from")
    targets: dict[str, RegionTarget] = Field(
        {},
        description="target name -> regions sharing one Keystone; 'master' names the "
        "master's own Keystone (its other regions)",
    )
    defaults: Policy = Field(
        Policy(), description="what every target uses unless it sets the key (GlanceSync's DEFAULT)"
    )
    parallelism: int = Field(
        2, ge=1, le=32, description="regions synced at the same time (each uploads one image)"
    )
    cache_gb: float = Field(
        8,
        ge=0,
        description="disk for master images still needed by a region (each is read from the "
        "master once); more than this: re-read rather than fill the disk",
    )
    glancesync_conf: Path | None = Field(
        None,
        description="an existing GlanceSync config file (INI) used as master, targets and "
        "defaults; its metadata_condition must be one the appliance can read as a rule",
    )
    api: bool = Field(
        True,
        description="serve GlanceSync's REST API beside the status page (/regions/...), "
        "Keystone tokens of the master's cloud only",
    )

    @model_validator(mode="after")
    def _enabled_needs_a_master_and_targets(self) -> Regions:
        if not self.enabled:
            return self
        if self.glancesync_conf is not None:
            if self.master is not None or self.targets:
                raise ValueError(
                    "give either glancesync_conf or master + targets, not both: the "
                    "GlanceSync file names its own master and targets"
                )
            return self
        if self.master is None:
            raise ValueError(
                "enabled needs master (openstack + region) and targets, or glancesync_conf"
            )
        if not self.targets:
            raise ValueError(
                "enabled needs at least one target, e.g. targets: {master: {regions: [RegionTwo]}}"
            )
        for name in self.targets:
            if not name or ":" in name:
                raise ValueError(f"targets: {name!r} is not a target name; give one without ':'")
        return self
