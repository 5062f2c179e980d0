"""Each service's native config, rendered from the one appliance file.

The supervisor writes these into the shared ``config`` volume, which job
containers mount read-only. Rendered files hold settings and the *paths*
of secret files, never a secret itself.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fedcloud_appliance.config import ApplianceConfig, OpenStackAuth

RENDER_DIR_ENV = "FEDCLOUD_RENDER_DIR"
DEFAULT_RENDER_DIR = Path("/var/lib/fedcloud-appliance/rendered")


def openstack(auth: OpenStackAuth) -> dict[str, Any]:
    """The shared credentials shape (fedcloud_common.openstack.Credentials)."""
    return {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in auth.model_dump(mode="json").items()
        if v is not None
    }


def cloudkeeper(config: ApplianceConfig) -> dict[str, Any]:
    images = config.images
    lists = []
    for image_list in images.lists:
        endorser = image_list.endorser or images.endorser
        assert endorser is not None  # guaranteed by validation
        entry = {
            "name": image_list.name,
            "url": str(image_list.url),
            "endorser_dn": endorser.dn,
            "endorser_ca": endorser.ca,
            "token_file": str(image_list.token_file) if image_list.token_file else None,
            "project": image_list.project,
            "vo": image_list.vo,
            "prefix": image_list.prefix,
            "enabled": image_list.enabled,
        }
        lists.append({k: v for k, v in entry.items() if v is not None})
    rendered: dict[str, Any] = {
        "lists": lists,
        "openstack": openstack(config.openstack_for("images")),
        "ca_path": str(images.ca_dir),
        "tag": images.tag,
        "name_prefix": images.prefix,
        "accepted_formats": images.formats,
        "vo_projects": {lst.vo: lst.project for lst in images.lists if lst.vo and lst.project},
    }
    if images.lists_file:
        rendered["image_lists_conf"] = str(images.lists_file)
    if images.endorser:
        rendered |= {"endorser_dn": images.endorser.dn, "endorser_ca": images.endorser.ca}
    return rendered


def accounting(config: ApplianceConfig) -> dict[str, Any]:
    auth = config.openstack_for("accounting")
    caso, sender = config.accounting.caso, config.accounting.sender
    keystone = {
        "auth_url": str(auth.auth_url),
        "username": auth.username,
        "password_file": str(auth.password_file),
        "user_domain_name": auth.user_domain_name,
        "project_domain_name": auth.project_domain_name,
        "region": auth.region,
        "ca_bundle": str(auth.ca_bundle) if auth.ca_bundle else None,
    }
    send = sender.model_dump(mode="json", exclude={"schedule"})
    return {
        "extract": {
            "site_name": config.site.name,
            "keystone": {k: v for k, v in keystone.items() if v is not None},
            "projects": caso.projects,
            "project_tag": caso.project_tag,
            "vo_property": caso.vo_property,
            "extractors": caso.extractors,
            "start_date": caso.start_date.isoformat() if caso.start_date else None,
        },
        "send": {k: v for k, v in send.items() if v is not None},
    }


def bdii(config: ApplianceConfig) -> dict[str, Any]:
    auth = config.openstack_for("bdii")
    delay = config.bdii.delete_delay.total_seconds()
    common = {"site": config.site.name, "port": 2170, "delete_delay": delay}
    return {
        "resource": common
        | {
            # cloud-info-provider publishes Keystone's URL as the endpoint.
            "endpoint": str(auth.auth_url or ""),
            "vos": {vo: mapping.project for vo, mapping in config.bdii.vos.items()},
            "openstack": openstack(auth),
            "interval": RESOURCE_REFRESH_S,
        },
        "site": common
        | {
            "resource_urls": ["ldap://resource-bdii:2170"],
            "interval": SITE_REFRESH_S,
        },
    }


# How often the BDII services refresh on their own, between the supervisor's
# scheduled publish runs (so `systemctl start bdii` alone keeps data fresh).
RESOURCE_REFRESH_S = 1800
SITE_REFRESH_S = 120

# Config section -> renderer; a renderer's keys name files (``.json`` added).
RENDERERS: dict[str, Callable[[ApplianceConfig], dict[str, Any]]] = {
    "images": lambda config: {"cloudkeeper": cloudkeeper(config)},
    "bdii": lambda config: {f"bdii/{role}": data for role, data in bdii(config).items()},
    "accounting": lambda config: {"accounting": accounting(config)},
}


def render_all(config: ApplianceConfig, out_dir: Path) -> list[Path]:
    """Write every enabled service's files atomically.

    The directory belongs to the renderer: files of services since disabled
    are removed, so a job never reads a stale config.
    """
    written = []
    for section, renderer in RENDERERS.items():
        if not getattr(config, section).enabled:
            continue
        for name, data in renderer(config).items():
            target = out_dir / f"{name}.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            _write_atomically(target, json.dumps(data, indent=2) + "\n")
            written.append(target)
    for stale in set(out_dir.rglob("*.json")) - set(written):
        stale.unlink()
    return written


def _write_atomically(target: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        stream.write(text)
    os.chmod(tmp, 0o644)  # job containers run as other users; no secrets inside
    os.replace(tmp, target)
