"""The durable hand-over from the job (and vmcatcher hooks) to the backend.

One JSON file per request in ``<spool>/requests``, written under a hidden
name and renamed into place, so the backend only ever sees whole requests.
A request is removed only after the backend has finished with it: if the
backend dies mid-upload, the request is still there when it restarts, and
replanning against Glance makes the retry safe.

Every request is a typed record with a version. The backend answers each
one with a result in ``<spool>/results/<request id>``: what it applied,
what failed and why. The job waits for those results, not for the queue to
empty, so an upload that failed is a failed run, never an "ok".
"""

from __future__ import annotations

import datetime
import json
import logging
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter, ValidationError

from fedcloud_common.files import write_atomically
from fedcloud_common.imagestatus import ImageOutcome
from fedcloud_common.model import Model
from fedcloud_common.settings import describe
from fedcloud_common.settings.cloudkeeper import AdoptFrom

LOG = logging.getLogger(__name__)

# The record version this code writes and the newest it reads. Files from
# before versioning (no "version" key) are version 0, the same shape.
SPOOL_VERSION = 2  # 2: SyncList.adopt and retire_old (an older backend cannot apply them)
# Results nobody collected (a run without --wait) are dropped after this long.
RESULT_KEEP_S = 7 * 24 * 3600


class ReadyFile(Model):
    """An image file the job downloaded, checked and converted for the backend."""

    path: str
    disk_format: str
    content_digest: str
    # What Glance must report after the upload; unknown once converted.
    sha512: str | None = None
    # Removed by the backend once done (vmcatcher's own cache file is not).
    owned: bool = True


class SyncList(Model):
    """Bring Glance in line with one list's trusted content (None: retire it all)."""

    version: int = SPOOL_VERSION
    kind: Literal["sync-list"] = "sync-list"
    id: str = ""
    list: str
    content: str | None = None
    project: str | None = None
    prefix: str = ""
    files: dict[str, ReadyFile] = {}
    # Images whose download failed, with why: reported, not left "pending".
    download_errors: dict[str, str] = {}
    retire_reason: str = ""
    # Take over the old tool's images for this list (fedcloud_cloudkeeper.adopt).
    adopt: AdoptFrom | None = None
    # Old tools' images (Glance id -> why) that cleanup --retire-old retires.
    retire_old: dict[str, str] = {}


class VmcatcherEvent(Model):
    """One image event from vmcatcher's cache (VMCATCHER_CACHE_EVENT)."""

    version: int = SPOOL_VERSION
    kind: Literal["vmcatcher-event"] = "vmcatcher-event"
    id: str = ""
    event: str
    list: str
    image: dict[str, str]
    image_list_identifier: str = ""
    vo: str | None = None
    file: str | None = None


Request = Annotated[SyncList | VmcatcherEvent, Field(discriminator="kind")]
_REQUEST: TypeAdapter[SyncList | VmcatcherEvent] = TypeAdapter(Request)


class RequestResult(Model):
    """The backend's answer to one request."""

    version: int = SPOOL_VERSION
    id: str
    list: str
    finished: str
    # applied: every image ok; failed: some image failed (the rest applied);
    # refused: the request can never be applied; retrying: it could not be
    # applied now (Glance or Keystone unreachable) and stays queued.
    outcome: Literal["applied", "failed", "refused", "retrying"]
    reason: str = ""
    images: dict[str, ImageOutcome] = {}
    uploaded_bytes: int = 0  # image bytes sent to Glance for this request

    @property
    def ok(self) -> bool:
        return self.outcome == "applied"

    def problems(self) -> Sequence[str]:
        """One line per image that did not make it, naming it."""
        return [
            f"{name}: {image.reason}"
            for name, image in sorted(self.images.items())
            if image.state != "ok"
        ]


class RefusedRequestError(Exception):
    """A spooled file that is not a request this version can apply."""


class Spool:
    def __init__(self, directory: Path) -> None:
        self.requests = Path(directory) / "requests"
        self.failed = Path(directory) / "failed"
        self.results = Path(directory) / "results"

    def put(self, request: SyncList | VmcatcherEvent) -> str:
        """Queue ``request``; returns its id. Names sort in arrival order."""
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json"
        stamped = request.model_copy(update={"id": name, "version": SPOOL_VERSION})
        write_atomically(self.requests / name, stamped.model_dump_json(indent=1))
        return name

    def pending(self) -> list[Path]:
        if not self.requests.is_dir():
            return []
        return sorted(self.requests.glob("*.json"))

    def load(self, path: Path) -> SyncList | VmcatcherEvent:
        """The request in ``path``; RefusedRequestError says why it cannot be read."""
        try:
            raw = json.loads(path.read_bytes())
        except (OSError, ValueError) as error:
            raise RefusedRequestError(f"not a JSON request ({error})") from None
        if not isinstance(raw, dict):
            raise RefusedRequestError("not a request object")
        version = raw.setdefault("version", 0)
        if not isinstance(version, int) or version > SPOOL_VERSION:
            raise RefusedRequestError(
                f"written by a newer cloudkeeper (spool version {version!r}; this "
                f"cloudkeeper-os reads up to {SPOOL_VERSION}): run the same appliance "
                "version for the job and cloudkeeper-os"
            )
        raw.setdefault("id", path.name)
        try:
            return _REQUEST.validate_python(raw)
        except ValidationError as error:
            raise RefusedRequestError(f"not a valid request: {describe(error)}") from None

    def done(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def reject(self, path: Path, reason: str) -> None:
        """Keep a request that can never be applied in failed/, with why beside it."""
        self.failed.mkdir(parents=True, exist_ok=True)
        path.replace(self.failed / path.name)
        write_atomically(self.failed / f"{path.name}.reason", reason + "\n")

    def answer(self, result: RequestResult) -> None:
        write_atomically(self.results / result.id, result.model_dump_json(indent=1))

    def result(self, request_id: str) -> RequestResult | None:
        """The backend's answer to ``request_id``, once there is one."""
        try:
            return RequestResult.model_validate_json((self.results / request_id).read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValidationError) as error:
            return RequestResult(
                id=request_id,
                list="?",
                finished=_now(),
                outcome="failed",
                reason=f"unreadable result ({error})",
            )

    def collect(self, request_id: str) -> None:
        """The waiting job has read its result."""
        (self.results / request_id).unlink(missing_ok=True)

    def prune_results(self, now: float | None = None) -> None:
        """Drop results no job collected (runs without --wait), after a week."""
        if not self.results.is_dir():
            return
        cutoff = (now or time.time()) - RESULT_KEEP_S
        for path in self.results.iterdir():
            if path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
