"""Image replication's settings (cloudkeeper and cloudkeeper-os)."""

from __future__ import annotations

from typing import Any

from fedcloud_appliance.config import ApplianceConfig
from fedcloud_appliance.render.stage import Stage, credentials


def cloudkeeper(config: ApplianceConfig, stage: Stage) -> dict[str, Any]:
    images = config.images
    # A list with a VO but no project of its own goes to the VO's project.
    site_vos = config.bdii.projects()
    lists = []
    for image_list in images.lists:
        endorser = image_list.endorser or images.endorser
        assert endorser is not None  # guaranteed by validation
        vo_project = site_vos.get(image_list.vo) if image_list.vo else None
        entry = {
            "name": image_list.name,
            "url": str(image_list.url),
            "endorser_dn": endorser.dn,
            "endorser_ca": endorser.ca,
            "token_file": stage(image_list.token_file),
            "project": image_list.project or vo_project,
            "vo": image_list.vo,
            "prefix": image_list.prefix,
            "enabled": image_list.enabled,
        }
        lists.append({k: v for k, v in entry.items() if v is not None})
    rendered: dict[str, Any] = {
        "lists": lists,
        "openstack": credentials(config.openstack_for("images"), stage).model_dump(
            mode="json", exclude_none=True
        ),
        "ca_path": str(images.ca_dir),
        "tag": images.tag,
        "name_prefix": images.prefix,
        "accepted_formats": images.formats,
        "vo_projects": site_vos
        | {lst.vo: lst.project for lst in images.lists if lst.vo and lst.project},
        "environment": config.outbound.environment(),
    }
    if config.outbound.ca_bundle:
        rendered["https_verify"] = stage(config.outbound.ca_bundle)
    if images.lists_file:
        # cloudkeeper's list file may hold AppDB tokens in its URLs.
        rendered["image_lists_conf"] = stage(images.lists_file)
    if images.endorser:
        rendered |= {"endorser_dn": images.endorser.dn, "endorser_ca": images.endorser.ca}
    return rendered
