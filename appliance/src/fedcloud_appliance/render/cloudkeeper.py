"""Image replication's settings (cloudkeeper and cloudkeeper-os).

Built as ``CloudkeeperSettings``, the model cloudkeeper loads, so a key
renamed on either side is a type error here (``make lint``).
"""

from __future__ import annotations

from pathlib import Path

from fedcloud_appliance.config import ApplianceConfig
from fedcloud_appliance.render.stage import Stage, credentials
from fedcloud_common.settings.cloudkeeper import CloudkeeperSettings, ListSource


def cloudkeeper(config: ApplianceConfig, stage: Stage) -> CloudkeeperSettings:
    images = config.images
    # A list with a VO but no project of its own goes to the VO's project.
    site_vos = config.bdii.projects()
    lists = []
    for image_list in images.lists:
        endorser = image_list.endorser or images.endorser
        assert endorser is not None  # guaranteed by validation
        vo_project = site_vos.get(image_list.vo) if image_list.vo else None
        lists.append(
            ListSource(
                name=image_list.name,
                url=str(image_list.url),
                endorser_dn=endorser.dn,
                endorser_ca=endorser.ca,
                token_file=_path(stage(image_list.token_file)),
                project=image_list.project or vo_project,
                vo=image_list.vo,
                prefix=image_list.prefix,
                enabled=image_list.enabled,
                adopt=image_list.adopt,
            )
        )
    return CloudkeeperSettings(
        lists=tuple(lists),
        openstack=credentials(config.openstack_for("images"), stage),
        ca_path=images.ca_dir,
        tag=images.tag,
        name_prefix=images.prefix,
        accepted_formats=tuple(images.formats),
        vo_projects=site_vos
        | {lst.vo: lst.project for lst in images.lists if lst.vo and lst.project},
        environment=config.outbound.environment(),
        # What verifies the list and image servers: the outbound CAs, else the system's.
        https_verify=stage(config.outbound.ca_bundle) or True,
        # cloudkeeper's list file may hold AppDB tokens in its URLs: staged like a secret.
        image_lists_conf=_path(stage(images.lists_file)),
        endorser_dn=images.endorser.dn if images.endorser else None,
        endorser_ca=images.endorser.ca if images.endorser else None,
        parallel_downloads=images.parallel_downloads,
        retries=images.download_retries,
        timeout_s=images.http_timeout_s,
        event_hook=images.event_hook,
        vmcatcher_list=images.vmcatcher_list,
    )


def _path(staged: str | None) -> Path | None:
    return Path(staged) if staged is not None else None
