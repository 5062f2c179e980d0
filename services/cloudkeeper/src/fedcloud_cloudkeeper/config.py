"""The typed configuration of image replication: the common settings model
(``fedcloud_common.settings.cloudkeeper``) plus what only this service does
with it.

The appliance renders ``cloudkeeper.json`` from that model; ``from_file``
loads it through the same model, then adds the lists of cloudkeeper's
``image-lists.conf`` when one is named. Secrets (AppDB tokens) are file
paths, read when used through ``fedcloud_common.secrets`` so they never sit
in the rendered file; only image-lists.conf's inline tokens are held, and
never shown.
"""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path

from pydantic import Field, PrivateAttr, ValidationError

from fedcloud_common import settings
from fedcloud_common.errors import ConfigError
from fedcloud_common.settings import cloudkeeper as common


class ListSource(common.ListSource):
    """A subscribed list; those from image-lists.conf may carry an inline token.

    The token is private state, not a setting: it never appears in the
    settings file, in a dump or in ``repr``.
    """

    _token: str | None = PrivateAttr(None)

    @property
    def token(self) -> str | None:
        """AppDB's token from the list's URL (image-lists.conf); prefer token_file."""
        return self._token

    @classmethod
    def with_token(cls, token: str | None, **fields: object) -> ListSource:
        source = cls.model_validate(fields)
        source._token = token
        return source


class Config(common.CloudkeeperSettings):
    """The settings as the job and the backend use them: loaded from the
    rendered file, with image-lists.conf's lists (and their tokens) added."""

    lists: tuple[ListSource, ...] = Field(
        (), description="the subscribed image lists, then image_lists_conf's"
    )

    @classmethod
    def from_file(cls, path: Path) -> Config:
        """The rendered settings, plus image-lists.conf's lists; ConfigError if wrong."""
        config = settings.load(cls, path)
        if config.image_lists_conf is None:
            return config
        extra = read_image_lists_conf(config.image_lists_conf, config)
        try:  # validated again: a name may clash with a configured list's
            return cls.model_validate(dict(config) | {"lists": (*config.lists, *extra)})
        except ValidationError as error:
            raise ConfigError(
                where=f"{path} with {config.image_lists_conf}", problem=settings.describe(error)
            ) from None

    def source(self, name: str) -> ListSource:
        for source in self.lists:
            if source.name == name:
                return source
        raise ConfigError(where=f"lists.{name}", problem="no such list configured")


def read_image_lists_conf(path: Path, config: common.CloudkeeperSettings) -> list[ListSource]:
    """Lists from cloudkeeper's ``image-lists.conf``: one URL per line.

    AppDB's documented form carries the token as the URL's user
    (``https://TOKEN:x-oauth-basic@host/...``); it is taken out of the URL so
    it is sent as the basic-auth user and never logged.
    """
    if not (config.endorser_dn and config.endorser_ca):
        raise ConfigError(
            where=str(path), problem="endorser_dn and endorser_ca must be set to use it"
        )
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ConfigError(where=str(path), problem=error.strerror or str(error)) from None
    sources = []
    for number, line in enumerate(text.splitlines(), 1):
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
            ListSource.with_token(
                urllib.parse.unquote(parts.username) if parts.username else None,
                name=slug[-64:].lstrip("-._") or f"list-{number}",
                url=url,
                endorser_dn=config.endorser_dn,
                endorser_ca=config.endorser_ca,
            )
        )
    return sources
