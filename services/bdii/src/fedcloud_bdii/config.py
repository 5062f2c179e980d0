"""The information system's settings: a small typed object read from TOML.

The appliance's own config file (issue 6) will render this file; until then
operators and tests write it directly. Example::

    site = "MY-SITE"
    endpoint = "https://keystone.example.org:5000/v3"   # as registered in GOCDB
    delete_delay = 3600
    provider_args = ["--os-cloud", "fedcloud"]
    [vos]
    "fedcloud.egi.eu" = "<keystone project id>"

A site BDII sets ``resource_urls`` instead of ``vos``.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedcloud_bdii.errors import BdiiError


class ConfigError(BdiiError):
    msg_fmt = "configuration {path}: {problem}"


@dataclass(frozen=True)
class BdiiConfig:
    site: str
    endpoint: str = ""
    vos: dict[str, str] = field(default_factory=dict)  # VO name -> project ID
    delete_delay: float = 3600.0  # seconds a vanished entry stays published
    state_dir: Path = Path("/var/lib/fedcloud-bdii")
    port: int = 2170
    interval: float = 120.0  # seconds between publish cycles when serving
    provider: str = "cloud-info-provider-service"
    provider_args: list[str] = field(default_factory=list)
    provider_timeout: float = 600.0
    resource_urls: list[str] = field(default_factory=list)  # site BDII only
    # The appliance renders its credentials here (fedcloud_common.openstack
    # shape, secrets as file paths); cloud-info-provider then gets them as
    # OS_* variables. Without them, provider_args/OS_* must say how to log in.
    openstack: dict[str, Any] | None = None
    # Extra variables for cloud-info-provider alone: the proxy and CA bundle
    # through which it reaches GOCDB (the appliance's `outbound` section).
    provider_environment: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> BdiiConfig:
        try:
            text = path.read_text()
            # The supervisor renders JSON; operators may write TOML.
            raw = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (OSError, ValueError) as exc:
            raise ConfigError(path=path, problem=exc) from exc
        known = set(cls.__dataclass_fields__)
        if unknown := set(raw) - known:
            raise ConfigError(path=path, problem=f"unknown keys {sorted(unknown)}")
        if "site" not in raw:
            raise ConfigError(path=path, problem="'site' is required")
        if "state_dir" in raw:
            raw["state_dir"] = Path(raw["state_dir"])
        return cls(**raw)

    def site_yaml(self, project_ids: dict[str, str] | None = None) -> str:
        """cloud-info-provider's site config (JSON is valid YAML).

        ``project_ids`` maps the configured projects (names or ids) to ids.
        """
        ids = project_ids or {}
        return json.dumps(
            {
                "gocdb": self.site,
                "endpoint": self.endpoint,
                "vos": [
                    {"name": vo, "auth": {"project_id": ids.get(p, p)}}
                    for vo, p in self.vos.items()
                ],
            },
            indent=2,
        )

    def provider_command(self, site_yaml: Path) -> list[str]:
        return [
            self.provider,
            "--middleware",
            "openstack",
            "--format",
            "glue21json",
            *self.provider_args,
            str(site_yaml),
        ]
