"""Glance v2 over its REST API, for one region of one Keystone.

Raw calls through openstacksdk's keystoneauth adapter: the SDK's image
resource hides properties among its own attributes and always hashes
uploads itself; here listing, patching and streaming stay explicit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from fedcloud_common.openstack import Credentials
from fedcloud_glancesync.images import Image

if TYPE_CHECKING:
    import openstack.connection

PAGE = 1000
CHUNK = 1024 * 1024
PATCH_TYPE = "application/openstack-images-v2.1-json-patch"


class GlanceError(Exception):
    """A Glance call failed; the message is the one-line reason."""


class DataMismatchError(GlanceError):
    """The master's bytes are not the image its checksum describes."""

    permanent = True  # reading it again gives the same bytes


@dataclasses.dataclass
class Region:
    """One region's Glance, reached with a target's credentials."""

    name: str
    conn: openstack.connection.Connection

    @property
    def project(self) -> str:
        return str(self.conn.current_project_id)

    def images(self, timeout: float) -> list[Image]:
        found: list[Image] = []
        query: dict[str, Any] = {"limit": PAGE}
        while True:
            reply = self.conn.image.get("/images", params=query, raise_exc=False, timeout=timeout)
            if reply.status_code != 200:
                raise GlanceError(f"listing images: {_detail(reply)}")
            page = reply.json().get("images", [])
            found += [Image.from_glance(body) for body in page]
            if len(page) < PAGE:
                return found
            query["marker"] = page[-1]["id"]

    def update(self, image_id: str, changes: dict[str, Any]) -> None:
        """Set (``add`` replaces an existing key too) each key of ``changes``."""
        if not changes:
            return
        current = self.conn.image.get(f"/images/{image_id}", raise_exc=False)
        if current.status_code != 200:
            raise GlanceError(f"reading image {image_id}: {_detail(current)}")
        body = current.json()
        ops = [
            {"op": "replace" if key in body else "add", "path": f"/{key}", "value": value}
            for key, value in changes.items()
        ]
        reply = self.conn.image.patch(
            f"/images/{image_id}",
            json=ops,
            headers={"Content-Type": PATCH_TYPE},
            raise_exc=False,
        )
        if reply.status_code != 200:
            raise GlanceError(f"updating image {image_id}: {_detail(reply)}")

    def delete(self, image_id: str) -> None:
        reply = self.conn.image.delete(f"/images/{image_id}", raise_exc=False)
        if reply.status_code not in (204, 404):
            raise GlanceError(f"deleting image {image_id}: {_detail(reply)}")

    def create(self, master: Image, data: Path) -> str:
        """A copy of ``master`` with ``data``'s bytes; nothing left behind on failure.

        Tags are not copied: another site's tag (e.g. image replication's
        own) would make that site's tools treat the copy as theirs.
        """
        body: dict[str, Any] = {
            "name": master.name,
            "disk_format": master.disk_format or "raw",
            "container_format": master.container_format or "bare",
            "visibility": master.visibility,
            "min_ram": master.min_ram,
            "min_disk": master.min_disk,
            **master.properties,
        }
        reply = self.conn.image.post("/images", json=body, raise_exc=False)
        if reply.status_code != 201:
            raise GlanceError(f"creating {master.name!r}: {_detail(reply)}")
        image_id = str(reply.json()["id"])
        try:
            with data.open("rb") as stream:
                reply = self.conn.image.put(
                    f"/images/{image_id}/file",
                    data=stream,
                    headers={"Content-Type": "application/octet-stream"},
                    raise_exc=False,
                    # A retry would resend from wherever the file was.
                    connect_retries=0,
                    status_code_retries=0,
                    retriable_status_codes=[],
                )
            if reply.status_code not in (201, 204):
                raise GlanceError(f"uploading {master.name!r}: {_detail(reply)}")
            stored = self.conn.image.get(f"/images/{image_id}", raise_exc=False).json()
            copy = Image.from_glance(stored)
            if copy.status != "active" or copy.size != master.size:
                raise GlanceError(f"uploading {master.name!r}: Glance holds it {copy.status}")
            if master.sha512 and copy.sha512 and copy.sha512 != master.sha512:
                raise GlanceError(f"uploading {master.name!r}: Glance stored other bytes")
        except BaseException:
            self.delete_quietly(image_id)
            raise
        return image_id

    def delete_quietly(self, image_id: str) -> None:
        # The original failure is the one reported.
        with contextlib.suppress(Exception):
            self.delete(image_id)

    def download(self, image: Image, out: BinaryIO) -> int:
        """Stream ``image``'s data into ``out``, checked as it arrives; the bytes read.

        The SHA-512 Glance recorded at upload is the reference (MD5 when the
        image has none); any difference raises DataMismatchError.
        """
        reply = self.conn.image.get(f"/images/{image.id}/file", stream=True, raise_exc=False)
        if reply.status_code != 200:
            raise GlanceError(f"reading {image.name!r} from the master: {_detail(reply)}")
        sha512 = hashlib.sha512()
        md5 = hashlib.md5(usedforsecurity=False)
        count = 0
        try:
            for chunk in _chunks(reply.iter_content(CHUNK)):
                sha512.update(chunk)
                md5.update(chunk)
                out.write(chunk)
                count += len(chunk)
        finally:
            reply.close()
        if image.sha512:
            if sha512.hexdigest() != image.sha512:
                raise DataMismatchError(
                    f"{image.name!r}: the master's data does not match its SHA-512; not copied"
                )
        elif image.checksum and md5.hexdigest() != image.checksum:
            raise DataMismatchError(
                f"{image.name!r}: the master's data does not match its checksum; not copied"
            )
        if count != image.size:
            raise DataMismatchError(
                f"{image.name!r}: read {count} bytes of {image.size}; not copied"
            )
        return count


def _chunks(source: Iterator[bytes]) -> Iterator[bytes]:
    for chunk in source:
        if chunk:
            yield chunk


def catalog_regions(conn: openstack.connection.Connection) -> list[str]:
    """Regions with a Glance in this Keystone's catalog, sorted."""
    session = conn.session
    assert session.auth is not None
    access = session.auth.get_access(session)  # type: ignore[attr-defined]
    endpoints = access.service_catalog.get_endpoints(service_type="image", interface="public")
    found = {e.get("region_id") or e.get("region") for e in endpoints.get("image", [])}
    return sorted(str(region) for region in found if region)


def connect(credentials: Credentials, region: str) -> openstack.connection.Connection:
    return credentials.connect(region_name=region)


def _detail(reply: Any) -> str:
    text = " ".join(str(getattr(reply, "text", "")).split())[:200]
    return f"HTTP {reply.status_code} {text}".strip()
