"""Which regions a command works on: GlanceSync's ``REGION``, ``target:REGION``
and ``target:`` arguments, against the configured targets and catalogs."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from fedcloud_common.errors import ConfigError
from fedcloud_common.settings.glancesync import GlanceSyncSettings, Target

MASTER_TARGET = "master"


@dataclasses.dataclass(frozen=True)
class TargetRegion:
    target: str
    region: str

    @property
    def label(self) -> str:
        """GlanceSync's name: the master target's regions plain, others ``target:region``."""
        return self.region if self.target == MASTER_TARGET else f"{self.target}:{self.region}"


Catalog = Callable[[str, Target], list[str]]


def configured(settings: GlanceSyncSettings, target: str, catalog: Catalog) -> list[str]:
    """A target's regions: listed, or its catalog's minus ignore_regions (and the master)."""
    spec = settings.targets[target]
    if spec.regions is not None:
        return list(spec.regions)
    found = catalog(target, spec)
    skip = set(spec.ignore_regions)
    if target == MASTER_TARGET:
        skip.add(settings.master_region)
    return [region for region in found if region not in skip]


def resolve(settings: GlanceSyncSettings, args: list[str], catalog: Catalog) -> list[TargetRegion]:
    """The regions named by ``args`` (every configured one when there are none)."""
    if not args:
        args = [f"{name}:" for name in settings.targets]
    chosen: list[TargetRegion] = []
    for arg in args:
        target, _, region = arg.rpartition(":") if ":" in arg else (MASTER_TARGET, "", arg)
        if target not in settings.targets:
            known = ", ".join(sorted(settings.targets)) or "none"
            raise ConfigError(
                where=f"region {arg!r}",
                problem=f"no target {target!r} is configured (targets: {known})",
            )
        regions = configured(settings, target, catalog) if not region else [region]
        for name in regions:
            if target == MASTER_TARGET and name == settings.master_region:
                raise ConfigError(
                    where=f"region {arg!r}", problem="is the master region: nothing to sync to"
                )
            item = TargetRegion(target, name)
            if item not in chosen:
                chosen.append(item)
    return chosen
