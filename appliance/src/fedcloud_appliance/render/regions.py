"""Multi-region image sync's settings (``glancesync.json``).

Built as ``GlanceSyncSettings``, the model fedcloud-glancesync loads. Each
target's policy is ``regions.defaults`` with the keys the target sets. A
GlanceSync INI file (``regions.glancesync_conf``) is read here; its
passwords go straight into staged secret files, never into the settings.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from fedcloud_appliance.config import ApplianceConfig, glancesync_ini
from fedcloud_appliance.config.regions import MASTER_TARGET
from fedcloud_appliance.render.stage import Stage, credentials
from fedcloud_common.openstack import Credentials
from fedcloud_common.settings.glancesync import GlanceSyncSettings, Target

GIB = 1024**3


def glancesync(config: ApplianceConfig, stage: Stage) -> GlanceSyncSettings:
    regions = config.regions
    if regions.glancesync_conf is not None:
        return _from_ini(config, regions.glancesync_conf, stage)
    assert regions.master is not None  # guaranteed by validation
    master_auth = regions.master.openstack or config.openstack
    assert master_auth is not None
    master = credentials(master_auth, stage)
    targets = {
        name: Target(
            openstack=credentials(target.openstack, stage) if target.openstack else master,
            regions=target.regions,
            ignore_regions=target.ignore_regions,
            policy=target.policy(regions.defaults),
        )
        for name, target in regions.targets.items()
    }
    return GlanceSyncSettings(
        master_region=regions.master.region,
        master=master,
        targets=targets,
        parallelism=regions.parallelism,
        cache_bytes=int(regions.cache_gb * GIB),
        managed_tag=config.images.tag,
    )


def _from_ini(config: ApplianceConfig, path: Path, stage: Stage) -> GlanceSyncSettings:
    legacy = glancesync_ini.read(path)
    targets = {}
    master: Credentials | None = None
    with tempfile.TemporaryDirectory() as scratch:
        for name, target in legacy.targets.items():
            secret = Path(scratch) / f"glancesync-{name}-password"
            secret.touch(mode=0o600)
            secret.write_text(target.password.reveal() + "\n", encoding="utf-8")
            staged = stage(secret)
            assert staged is not None
            auth = Credentials.model_validate(
                {
                    "auth_url": target.auth_url,
                    "username": target.username,
                    "password_file": staged,
                    "project_name": target.project_name,
                }
            )
            if name == MASTER_TARGET:
                master = auth
            targets[name] = Target(
                openstack=auth,
                ignore_regions=target.ignore_regions,
                policy=target.policy,
            )
    assert master is not None  # glancesync_ini.read insists on [master]
    return GlanceSyncSettings(
        master_region=legacy.master_region,
        master=master,
        targets=targets,
        # The file's max_children, unless appliance.yaml says otherwise.
        parallelism=config.regions.parallelism
        if "parallelism" in config.regions.model_fields_set
        else legacy.parallelism,
        cache_bytes=int(config.regions.cache_gb * GIB),
        managed_tag=config.images.tag,
    )
