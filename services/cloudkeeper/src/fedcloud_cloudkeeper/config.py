"""The typed configuration of image replication.

The appliance's configuration file renders this (as JSON); tests build it
directly. Secrets (AppDB tokens) are file paths, read when used through
``fedcloud_common.secrets`` so they never sit in the rendered file.
"""

from __future__ import annotations

import dataclasses
import json
import re
import urllib.parse
from pathlib import Path
from typing import Any

from fedcloud_cloudkeeper.errors import ConfigError

DEFAULT_TAG = "fedcloud-cloudkeeper"


@dataclasses.dataclass(frozen=True)
class ListSource:
    """One subscribed image list and whom we trust to sign it."""

    name: str
    url: str
    endorser_dn: str
    endorser_ca: str
    token_file: Path | None = None
    # An inline token, only for lists from image-lists.conf, where AppDB's
    # documented form puts it in the URL; prefer token_file.
    token: str | None = dataclasses.field(default=None, repr=False)
    project: str | None = None
    prefix: str = ""
    enabled: bool = True
    # The VO the list must be for (its ad:vo); a list naming another is refused.
    vo: str | None = None

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", self.name):
            raise ConfigError(where=f"lists.{self.name}", problem="name must be a plain word")


@dataclasses.dataclass(frozen=True)
class Config:
    lists: tuple[ListSource, ...]
    ca_path: Path = Path("/etc/grid-security/certificates")
    # Under the spool by default: the job and the backend run in different
    # containers and share only that volume (and the image store).
    state_dir: Path = Path("/var/spool/cloudkeeper/state")
    cache_dir: Path = Path("/image_data")
    spool_dir: Path = Path("/var/spool/cloudkeeper")
    # The appliance renders its credentials here (fedcloud_common.openstack
    # shape, secrets as file paths); without them, a clouds.yaml entry.
    openstack: dict[str, Any] | None = None
    cloud: str = "fedcloud"
    clouds_yaml: Path | None = None
    # What verifies the list and image servers' TLS: True (system CAs), a
    # bundle file or a hashed directory.
    https_verify: bool | str = True
    # Proxy variables (HTTPS_PROXY, NO_PROXY) for the list and image
    # downloads; the appliance renders them from its `outbound` section.
    environment: dict[str, str] = dataclasses.field(default_factory=dict)
    name_prefix: str = ""
    tag: str = DEFAULT_TAG
    accepted_formats: tuple[str, ...] = ("qcow2", "raw")
    timeout_s: float = 30.0
    retries: int = 3
    backoff_s: float = 2.0
    parallel_downloads: int = 2
    # Kept free on the cache disk beyond the image being fetched.
    reserve_bytes: int = 256 * 1024 * 1024
    # Trusted when a list in image-lists.conf names no endorser of its own.
    endorser_dn: str | None = None
    endorser_ca: str | None = None
    image_lists_conf: Path | None = None
    # Run on each image event with vmcatcher's VMCATCHER_EVENT_* environment.
    event_hook: str | None = None
    # Images arriving through vmcatcher's cache events are managed under this
    # list name, shared with the project its VO maps to here.
    vmcatcher_list: str = "vmcatcher"
    vo_projects: dict[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        data = dict(data)
        lists = [_source(item) for item in data.pop("lists", [])]
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(where=", ".join(sorted(unknown)), problem="unknown setting")
        for key in ("ca_path", "state_dir", "cache_dir", "spool_dir", "clouds_yaml"):
            if data.get(key) is not None:
                data[key] = Path(data[key])
        if data.get("image_lists_conf"):
            data["image_lists_conf"] = Path(data["image_lists_conf"])
        if "accepted_formats" in data:
            data["accepted_formats"] = tuple(data["accepted_formats"])
        config = cls(lists=(), **data)
        if config.image_lists_conf:
            lists += read_image_lists_conf(config.image_lists_conf, config)
        names = [source.name for source in lists]
        if len(names) != len(set(names)):
            raise ConfigError(where="lists", problem="two lists have the same name")
        return dataclasses.replace(config, lists=tuple(lists))

    @classmethod
    def from_file(cls, path: Path) -> Config:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as error:
            raise ConfigError(where=str(path), problem=str(error)) from None

    def source(self, name: str) -> ListSource:
        for source in self.lists:
            if source.name == name:
                return source
        raise ConfigError(where=f"lists.{name}", problem="no such list configured")


def _source(item: dict[str, Any]) -> ListSource:
    item = dict(item)
    endorser = item.pop("endorser", None)  # the appliance config's {dn, ca} form
    if isinstance(endorser, dict):
        item.setdefault("endorser_dn", endorser.get("dn"))
        item.setdefault("endorser_ca", endorser.get("ca"))
    try:
        if item.get("token_file"):
            item["token_file"] = Path(item["token_file"])
        return ListSource(**item)
    except TypeError as error:
        raise ConfigError(where=f"lists.{item.get('name', '?')}", problem=str(error)) from None


def read_image_lists_conf(path: Path, config: Config) -> list[ListSource]:
    """Lists from cloudkeeper's ``image-lists.conf``: one URL per line.

    AppDB's documented form carries the token as the URL's user
    (``https://TOKEN:x-oauth-basic@host/...``); it is taken out of the URL so
    it is sent as the basic-auth user and never logged.
    """
    if not (config.endorser_dn and config.endorser_ca):
        raise ConfigError(
            where=str(path), problem="endorser_dn and endorser_ca must be set to use it"
        )
    sources = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = urllib.parse.urlsplit(line)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ConfigError(where=f"{path}:{number}", problem="not an HTTP(S) URL")
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        url = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
        slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{parts.hostname}{parts.path}").strip("-")
        sources.append(
            ListSource(
                name=slug[-64:].lstrip("-._") or f"list-{number}",
                url=url,
                endorser_dn=config.endorser_dn,
                endorser_ca=config.endorser_ca,
                token=urllib.parse.unquote(parts.username) if parts.username else None,
            )
        )
    return sources
