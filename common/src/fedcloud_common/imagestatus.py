"""The status files of image replication, and their one owner.

The image-sync job records each list's last check (``lists.json``),
cloudkeeper-os each list's images (``images-<list>.json``) and its own
heartbeat. ``cloudkeeper status``, the waiting job, the container's health
check and the supervisor's status page read them. They live in the image
spool volume, and only this module reads or writes them, through typed
records: it is shared so the supervisor reads them without importing the
image service.
"""

from __future__ import annotations

import datetime
import os
import time
from pathlib import Path
from typing import Literal

from pydantic import TypeAdapter, ValidationError

from fedcloud_common.files import write_atomically
from fedcloud_common.model import Model

HEARTBEAT = "backend.heartbeat"


class ImageOutcome(Model):
    """What happened to one image the last time cloudkeeper-os worked on its list."""

    state: Literal["ok", "pending", "error"]
    reason: str
    action: str
    glance_id: str | None = None
    version: str | None = None  # the list's hv:version of the image
    changed: str | None = None  # when Glance last changed for it (UTC, ISO 8601)


class ListStatus(Model):
    """A list's last check by the job: fetched and verified, or why not."""

    state: Literal["ok", "error"]
    reason: str
    checked: str
    errors: list[str] = []


class ImagesStatus(Model):
    """A list's images as the backend last left them."""

    updated: str
    images: dict[str, ImageOutcome] = {}


class Heartbeat(Model):
    """Written every few seconds by a running cloudkeeper-os: what it is doing."""

    pid: int
    working_on: str | None = None  # the request being applied
    doing: str | None = None  # the action in progress, e.g. "add ubuntu-22.04"
    since: str | None = None


_LISTS: TypeAdapter[dict[str, ListStatus]] = TypeAdapter(dict[str, ListStatus])


class StatusFiles:
    def __init__(self, state_dir: Path) -> None:
        self.directory = Path(state_dir) / "status"

    # lists.json: the job's
    def lists(self) -> dict[str, ListStatus]:
        path = self.directory / "lists.json"
        try:
            return _LISTS.validate_json(path.read_bytes())
        except FileNotFoundError:
            return {}
        except ValidationError:
            return {}  # an older or damaged file: the next run writes it afresh

    def record_lists(self, checked: dict[str, ListStatus]) -> None:
        recorded = self.lists() | checked
        write_atomically(self.directory / "lists.json", _LISTS.dump_json(recorded, indent=1))

    # images-<list>.json: the backend's
    def images(self, name: str) -> dict[str, ImageOutcome]:
        try:
            path = self.directory / f"images-{name}.json"
            return ImagesStatus.model_validate_json(path.read_bytes()).images
        except (FileNotFoundError, ValidationError):
            return {}

    def record_images(
        self, name: str, images: dict[str, ImageOutcome], when: str, merge: bool = False
    ) -> None:
        """Record a list's images; an image kept as it was keeps its last change time."""
        before = self.images(name)
        images = {
            key: image.model_copy(
                update={
                    "changed": (before[key].changed if key in before else None)
                    if image.action == "keep"
                    else when
                }
            )
            if image.state == "ok"
            else image
            for key, image in images.items()
        }
        if merge:
            images = before | images
        status = ImagesStatus(updated=when, images=images)
        write_atomically(self.directory / f"images-{name}.json", status.model_dump_json(indent=1))

    # the backend's heartbeat (the container health check reads its age)
    @property
    def heartbeat_path(self) -> Path:
        return self.directory / HEARTBEAT

    def beat(self, working_on: str | None = None, doing: str | None = None) -> None:
        since = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        beat = Heartbeat(pid=os.getpid(), working_on=working_on, doing=doing, since=since)
        write_atomically(self.heartbeat_path, beat.model_dump_json())

    def heartbeat(self) -> tuple[Heartbeat | None, float | None]:
        """The last heartbeat and its age in seconds (None, None: never beat)."""
        try:
            age = time.time() - self.heartbeat_path.stat().st_mtime
            text = self.heartbeat_path.read_bytes()
        except FileNotFoundError:
            return None, None
        try:
            return Heartbeat.model_validate_json(text), age
        except ValidationError:  # an older backend touched an empty file
            return None, age
