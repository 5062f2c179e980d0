"""vmcatcher compatibility: its cache events in, our image events out.

Sites that keep vmcatcher point its ``VMCATCHER_CACHE_EVENT`` hook at
``cloudkeeper vmcatcher-event``: the hook only turns the
``VMCATCHER_EVENT_*`` environment into a spooled request (vmcatcher kills
slow handlers after ~10 s), and cloudkeeper-os does the Glance work. The
reverse direction -- running a site's existing handler on our events with
the same variables -- is ``event_environment``.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fedcloud_common.errors import ConfigError

PREFIX = "VMCATCHER_EVENT_"
# Events that mean "this image is in the cache" and "it is gone" (vmcatcher launch.py).
AVAILABLE = ("AvailablePostfix",)
EXPIRED = ("ExpirePrefix", "ExpirePostfix", "ExpirePosfix")
# VMCATCHER_EVENT_<X> that are about the event, not hv:image fields.
NOT_IMAGE_FIELDS = ("TYPE", "UUID_SESSION", "FILENAME", "IL_DC_IDENTIFIER", "VO")


def request_from_environment(env: Mapping[str, str], list_name: str) -> dict[str, Any] | None:
    """The spool request for vmcatcher's event in ``env``; None for events we ignore."""
    kind = env.get(f"{PREFIX}TYPE", "")
    if kind not in AVAILABLE + EXPIRED:
        return None
    image = {
        key[len(PREFIX) :].lower().replace("_", ":"): value
        for key, value in env.items()
        if key.startswith(PREFIX) and key[len(PREFIX) :] not in NOT_IMAGE_FIELDS
    }
    if not image.get("dc:identifier"):
        raise ConfigError(where=f"{PREFIX}DC_IDENTIFIER", problem="missing from the event")
    path = None
    if kind in AVAILABLE:
        filename = env.get(f"{PREFIX}FILENAME") or image["dc:identifier"]
        cache = env.get("VMCATCHER_CACHE_DIR_CACHE", "")
        path = str(Path(cache, filename)) if cache else filename
        if not Path(path).is_absolute():
            raise ConfigError(where="VMCATCHER_CACHE_DIR_CACHE", problem="not set: no file path")
    return {
        "kind": "vmcatcher-event",
        "event": kind,
        "list": list_name,
        "image": image,
        "image_list_identifier": env.get(f"{PREFIX}IL_DC_IDENTIFIER", ""),
        "vo": env.get(f"{PREFIX}VO") or None,
        "file": path,
    }


def as_image_list(request: Mapping[str, Any], now: datetime.datetime) -> bytes:
    """A one-image hv:imagelist document for the event, so it is validated like any list."""
    image = dict(request["image"])
    image.setdefault("sl:comments", "")
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    far = (now + datetime.timedelta(days=3650)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body: dict[str, Any] = {
        "dc:date:created": stamp,
        "dc:date:expires": far,
        "dc:identifier": request.get("image_list_identifier") or "vmcatcher",
        "dc:description": "image from a vmcatcher cache event",
        "dc:title": "vmcatcher",
        "dc:source": "vmcatcher",
        "hv:version": stamp,
        "hv:uri": "vmcatcher",
        "hv:endorser": {
            "hv:x509": {"dc:creator": "vmcatcher", "hv:ca": "-", "hv:dn": "-", "hv:email": "-"}
        },
        "hv:images": [{"hv:image": image}],
    }
    if request.get("vo"):
        body["ad:vo"] = request["vo"]
    return json.dumps({"hv:imagelist": body}).encode()


def event_environment(kind: str, attributes: Mapping[str, Any], extra: Mapping[str, str]) -> dict:
    """The environment vmcatcher gives its event handler, for our own events."""
    env = {**os.environ, f"{PREFIX}TYPE": kind}
    for key, value in attributes.items():
        env[PREFIX + key.replace(":", "_").upper()] = str(value)
    env.update({PREFIX + key: value for key, value in extra.items()})
    return env
