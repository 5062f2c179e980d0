"""The information system's settings (``fedcloud_common.settings.bdii``) and
what the BDII does with them.

The appliance renders them as JSON (``rendered/bdii/resource.json`` and
``site.json``); an operator running a BDII on its own may write the same
keys as TOML, which is loaded through the same model. Example::

    site = "MY-SITE"
    endpoint = "https://keystone.example.org:5000/v3"   # as registered in GOCDB
    delete_delay = 3600
    provider_args = ["--os-cloud", "fedcloud"]
    [vos]
    "fedcloud.egi.eu" = "<keystone project name or id>"

A site BDII sets ``resource_urls`` instead of ``vos``, and may describe the
site (``[admin_domain]``) and where it is reached (``[public_address]``).
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from pydantic import ValidationError

from fedcloud_common import settings
from fedcloud_common.errors import ConfigError
from fedcloud_common.settings.bdii import BdiiSettings

__all__ = ["BdiiSettings", "load", "provider_command", "site_yaml"]


def load(path: Path) -> BdiiSettings:
    """The settings in ``path`` (the rendered JSON, or an operator's ``.toml``)."""
    if path.suffix != ".toml":
        return settings.load(BdiiSettings, path)
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(where=str(path), problem=exc.strerror or str(exc)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(where=str(path), problem=f"not valid TOML: {exc}") from None
    try:
        return BdiiSettings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(where=str(path), problem=settings.describe(exc)) from None


def site_yaml(config: BdiiSettings, project_ids: dict[str, str] | None = None) -> str:
    """cloud-info-provider's site config (JSON is valid YAML).

    ``project_ids`` maps the configured projects (names or ids) to ids.
    """
    ids = project_ids or {}
    return json.dumps(
        {
            "gocdb": config.site,
            "endpoint": config.endpoint,
            "vos": [
                {"name": vo, "auth": {"project_id": ids.get(p, p)}} for vo, p in config.vos.items()
            ],
        },
        indent=2,
    )


def provider_command(config: BdiiSettings, site_yaml_path: Path) -> list[str]:
    """How cloud-info-provider is run: GLUE 2.1 JSON for the given site config."""
    return [
        config.provider,
        "--middleware",
        "openstack",
        "--format",
        "glue21json",
        *config.provider_args,
        str(site_yaml_path),
    ]
