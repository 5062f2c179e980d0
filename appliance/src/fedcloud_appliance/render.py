"""Each service's native config, rendered from the one appliance file.

The supervisor (and compose's one-shot ``render``) writes these into the
shared ``config`` volume, which the services mount read-only. The services
run as their own non-root users, so the host's root-only secret files are
copied into ``secrets/<service>/`` there, owned by that service's user and
readable by it alone (0400); the rendered settings name those copies. No
secret is ever written into a rendered settings file.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fedcloud_appliance.config import ApplianceConfig, OpenStackAuth

RENDER_DIR_ENV = "FEDCLOUD_RENDER_DIR"
DEFAULT_RENDER_DIR = Path("/var/lib/fedcloud-appliance/rendered")
# Where the services see the rendered volume.
IN_CONTAINERS = "/etc/fedcloud-appliance/rendered"
# The user each service's image runs as (the useradd in its Dockerfile).
SERVICE_UIDS = {"images": 10030, "bdii": 10040, "accounting": 990}

Stage = Callable[[Path | None], str | None]


def openstack(auth: OpenStackAuth, stage: Stage) -> dict[str, Any]:
    """The shared credentials shape (fedcloud_common.openstack.Credentials)."""
    rendered = auth.model_dump(mode="json")
    # The CA bundle too: the host's path means nothing inside the containers.
    for key in ("password_file", "application_credential_secret_file", "clouds_yaml", "ca_bundle"):
        rendered[key] = stage(getattr(auth, key))
    return {k: v for k, v in rendered.items() if v is not None}


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
        "openstack": openstack(config.openstack_for("images"), stage),
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


def accounting(config: ApplianceConfig, stage: Stage) -> dict[str, Any]:
    auth = config.openstack_for("accounting")
    caso, sender = config.accounting.caso, config.accounting.sender
    keystone = {
        "auth_url": str(auth.auth_url),
        "username": auth.username,
        "password_file": stage(auth.password_file),
        "user_domain_name": auth.user_domain_name,
        "project_domain_name": auth.project_domain_name,
        "region": auth.region,
        "ca_bundle": stage(auth.ca_bundle),
    }
    send = sender.model_dump(mode="json", exclude={"schedule"})
    send["token_file"] = stage(sender.token_file)
    send["ca_bundle"] = stage(sender.ca_bundle or config.outbound.ca_bundle)
    send["environment"] = config.outbound.environment()
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


def bdii(config: ApplianceConfig, stage: Stage) -> dict[str, Any]:
    auth = config.openstack_for("bdii")
    delay = config.bdii.delete_delay.total_seconds()
    common = {"site": config.site.name, "port": 2170, "delete_delay": delay}
    return {
        "resource": common
        | {
            # cloud-info-provider publishes Keystone's URL as the endpoint.
            "endpoint": str(auth.auth_url or ""),
            "vos": config.bdii.projects(),
            "openstack": openstack(auth, stage),
            "interval": RESOURCE_REFRESH_S,
            # For cloud-info-provider's GOCDB query (it honours only these).
            "provider_environment": config.outbound.environment()
            | (
                {"REQUESTS_CA_BUNDLE": stage(config.outbound.ca_bundle)}
                if config.outbound.ca_bundle
                else {}
            ),
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
RENDERERS: dict[str, Callable[[ApplianceConfig, Stage], dict[str, Any]]] = {
    "images": lambda config, stage: {"cloudkeeper": cloudkeeper(config, stage)},
    "bdii": lambda config, stage: {
        f"bdii/{role}": data for role, data in bdii(config, stage).items()
    },
    "accounting": lambda config, stage: {"accounting": accounting(config, stage)},
}


def render_all(config: ApplianceConfig, out_dir: Path) -> list[Path]:
    """Write every enabled service's files (settings atomically) and secrets.

    The directory belongs to the renderer: files of services since disabled
    are removed, so no service reads a stale config or an old secret.
    """
    shutil.rmtree(out_dir / "secrets", ignore_errors=True)
    written = []
    for section, renderer in RENDERERS.items():
        if not getattr(config, section).enabled:
            continue
        stage = _stager(out_dir / "secrets" / section, SERVICE_UIDS[section])
        for name, data in renderer(config, stage).items():
            target = out_dir / f"{name}.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            _write_atomically(target, json.dumps(data, indent=2) + "\n")
            written.append(target)
    for stale in set(out_dir.rglob("*.json")) - set(written):
        stale.unlink()
    return written


def _stager(directory: Path, uid: int) -> Stage:
    """Copies secret files for one service's user; returns the path it sees."""

    staged: dict[Path, str] = {}

    def stage(path: Path | None) -> str | None:
        if path is None:
            return None
        if path in staged:
            return staged[path]
        if not directory.exists():
            directory.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            directory.mkdir(mode=0o700)
            os.chown(directory, uid, uid)
        target = directory / path.name
        if target.exists():  # two secrets with one name: keep both
            target = directory / f"{len(list(directory.iterdir()))}-{path.name}"
        shutil.copyfile(path, target)
        os.chown(target, uid, uid)
        os.chmod(target, 0o400)
        staged[path] = f"{IN_CONTAINERS}/{target.relative_to(directory.parent.parent)}"
        return staged[path]

    return stage


def _write_atomically(target: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        stream.write(text)
    os.chmod(tmp, 0o644)  # job containers run as other users; no secrets inside
    os.replace(tmp, target)
