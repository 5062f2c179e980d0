"""One Glance image as the sync sees it, from Glance v2's flat JSON."""

from __future__ import annotations

import dataclasses
from typing import Any

# Glance v2 keys that are not user properties (GlanceSync's user_properties
# are everything else), plus the prefixes Glance reserves for itself.
CORE_KEYS = frozenset(
    {
        "id", "name", "status", "visibility", "protected", "checksum", "os_hash_algo",
        "os_hash_value", "owner", "size", "virtual_size", "container_format", "disk_format",
        "created_at", "updated_at", "tags", "self", "file", "schema", "min_ram", "min_disk",
        "locations", "direct_url", "os_hidden", "stores", "is_public",
    }
)  # fmt: skip
RESERVED_PREFIXES = ("os_glance_",)


@dataclasses.dataclass(frozen=True)
class Image:
    id: str
    name: str
    status: str
    size: int
    checksum: str | None  # MD5, Glance's legacy checksum
    sha512: str | None  # os_hash_value when os_hash_algo is sha512
    owner: str | None
    visibility: str
    properties: dict[str, str]
    tags: tuple[str, ...] = ()
    disk_format: str | None = None
    container_format: str | None = None
    min_ram: int = 0
    min_disk: int = 0

    @property
    def is_public(self) -> bool:
        return self.visibility == "public"

    @classmethod
    def from_glance(cls, body: dict[str, Any]) -> Image:
        properties = {
            key: str(value)
            for key, value in body.items()
            if key not in CORE_KEYS and not key.startswith(RESERVED_PREFIXES) and value is not None
        }
        algo = body.get("os_hash_algo")
        return cls(
            id=body["id"],
            name=body.get("name") or "",
            status=body.get("status") or "",
            size=int(body.get("size") or 0),
            checksum=body.get("checksum"),
            sha512=body.get("os_hash_value") if algo == "sha512" else None,
            owner=body.get("owner"),
            visibility=body.get("visibility") or "private",
            properties=properties,
            tags=tuple(body.get("tags") or ()),
            disk_format=body.get("disk_format"),
            container_format=body.get("container_format"),
            min_ram=int(body.get("min_ram") or 0),
            min_disk=int(body.get("min_disk") or 0),
        )


def same_content(a: Image, b: Image) -> bool:
    """SHA-512 where both sides have it, else MD5 (GlanceSync's checksum)."""
    if a.sha512 and b.sha512:
        return a.sha512 == b.sha512
    return a.checksum is not None and a.checksum == b.checksum


def checksums_of(image: Image) -> set[str]:
    """The values a conflict list may name this image by."""
    return {value.lower() for value in (image.checksum, image.sha512) if value}
