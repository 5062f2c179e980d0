"""The ``hv:imagelist`` format: parse, validate, and the values we act on.

Validation is strict because everything downstream trusts these values: the
identifier becomes a file name and a Glance lookup key, the checksum and size
gate the upload, the dates decide what gets retired. Every error names the
offending field by its path in the document so an operator (or the endorser)
can fix it without reading our code.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import re
from typing import Any

from fedcloud_cloudkeeper.errors import ImageListInvalidError

DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

LIST_REQUIRED = (
    "dc:date:created",
    "dc:date:expires",
    "dc:identifier",
    "dc:description",
    "dc:title",
    "dc:source",
    "hv:version",
    "hv:uri",
    "hv:endorser",
    "hv:images",
)
ENDORSER_REQUIRED = ("dc:creator", "hv:ca", "hv:dn", "hv:email")
IMAGE_REQUIRED = (
    "dc:identifier",
    "dc:title",
    "dc:description",
    "hv:uri",
    "hv:size",
    "sl:checksum:sha512",
    "sl:arch",
    "sl:os",
    "sl:osversion",
    "sl:comments",
    "hv:hypervisor",
    "hv:version",
)
# What decides that an image is a new version (re-download and re-upload)
# rather than a metadata change: cloudkeeper learnt that hv:uri alone is not it.
CONTENT_FIELDS = ("hv:uri", "sl:checksum:sha512", "hv:size", "hv:version")

_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_SHA512 = re.compile(r"^[0-9a-f]{128}$")


@dataclasses.dataclass(frozen=True)
class Endorser:
    dn: str
    ca: str
    creator: str
    email: str


@dataclasses.dataclass(frozen=True)
class Image:
    identifier: str
    title: str
    description: str
    uri: str
    size: int
    sha512: str
    version: str
    arch: str
    os: str
    os_name: str
    os_version: str
    hypervisor: str
    format: str
    mpuri: str
    group: str
    ram_minimum: int
    core_minimum: int
    expires: datetime.datetime | None
    raw: dict[str, Any] = dataclasses.field(compare=False, repr=False)

    @property
    def content_digest(self) -> str:
        """Changes exactly when the image bytes must be fetched again."""
        return _digest({k: self.raw[k] for k in CONTENT_FIELDS})

    @property
    def metadata_digest(self) -> str:
        """Changes when anything in the entry changes (content included)."""
        return _digest(self.raw)

    def expired(self, now: datetime.datetime) -> bool:
        return self.expires is not None and self.expires <= now


@dataclasses.dataclass(frozen=True)
class ImageList:
    identifier: str
    title: str
    description: str
    uri: str
    version: str
    source: str
    vo: str | None
    created: datetime.datetime
    expires: datetime.datetime
    endorser: Endorser
    images: tuple[Image, ...]
    raw: dict[str, Any] = dataclasses.field(compare=False, repr=False)

    def expired(self, now: datetime.datetime) -> bool:
        return self.expires <= now

    def not_yet_valid(self, now: datetime.datetime) -> bool:
        return self.created > now


def parse(content: bytes, source: str) -> ImageList:
    """The image list in ``content`` (the signed bytes), validated."""
    try:
        document = json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ImageListInvalidError(
            source=source, field="(document)", problem=f"not JSON: {error}"
        ) from None
    body = _object(document, "hv:imagelist", source, "")
    path = "hv:imagelist"
    _require(body, LIST_REQUIRED, source, path)
    endorser = _object(body["hv:endorser"], "hv:x509", source, f"{path}.hv:endorser")
    _require(endorser, ENDORSER_REQUIRED, source, f"{path}.hv:endorser.hv:x509")
    entries = body["hv:images"]
    if not isinstance(entries, list):
        raise ImageListInvalidError(source=source, field=f"{path}.hv:images", problem="not a list")
    images = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        image = _image(entry, source, f"{path}.hv:images[{index}]")
        if image.identifier in seen:
            raise ImageListInvalidError(
                source=source,
                field=f"{path}.hv:images[{index}].hv:image.dc:identifier",
                problem=f"{image.identifier!r} appears twice",
            )
        seen.add(image.identifier)
        images.append(image)
    vo = body.get("ad:vo")
    return ImageList(
        identifier=_string(body, "dc:identifier", source, path),
        title=_string(body, "dc:title", source, path),
        description=_string(body, "dc:description", source, path),
        uri=_string(body, "hv:uri", source, path),
        version=_string(body, "hv:version", source, path),
        source=_string(body, "dc:source", source, path),
        vo=str(vo) if vo else None,
        created=_date(body, "dc:date:created", source, path),
        expires=_date(body, "dc:date:expires", source, path),
        endorser=Endorser(
            dn=endorser["hv:dn"],
            ca=endorser["hv:ca"],
            creator=endorser["dc:creator"],
            email=endorser["hv:email"],
        ),
        images=tuple(images),
        raw=body,
    )


def _image(entry: object, source: str, where: str) -> Image:
    raw = _object(entry, "hv:image", source, where)
    path = f"{where}.hv:image"
    _require(raw, IMAGE_REQUIRED, source, path)
    identifier = _string(raw, "dc:identifier", source, path)
    if not _IDENTIFIER.match(identifier):
        raise ImageListInvalidError(
            source=source,
            field=f"{path}.dc:identifier",
            problem=f"{identifier!r} is not a plain identifier (letters, digits, . _ : -)",
        )
    sha512 = _string(raw, "sl:checksum:sha512", source, path).lower()
    if not _SHA512.match(sha512):
        raise ImageListInvalidError(
            source=source, field=f"{path}.sl:checksum:sha512", problem="not 128 hex digits"
        )
    uri = _string(raw, "hv:uri", source, path)
    if not uri.startswith(("https://", "http://")):
        raise ImageListInvalidError(
            source=source, field=f"{path}.hv:uri", problem="not an HTTP(S) URL"
        )
    return Image(
        identifier=identifier,
        title=_string(raw, "dc:title", source, path),
        description=str(raw["dc:description"]),
        uri=uri,
        size=_integer(raw, "hv:size", source, path, minimum=1),
        sha512=sha512,
        version=str(raw["hv:version"]),
        arch=str(raw["sl:arch"]),
        os=str(raw["sl:os"]),
        os_name=str(raw.get("sl:osname") or raw["sl:os"]),
        os_version=str(raw["sl:osversion"]),
        hypervisor=str(raw["hv:hypervisor"]),
        format=str(raw.get("hv:format", "")),
        mpuri=str(raw.get("ad:mpuri", "")),
        group=str(raw.get("ad:group", "")),
        ram_minimum=_integer(raw, "hv:ram_minimum", source, path, default=0),
        core_minimum=_integer(raw, "hv:core_minimum", source, path, default=0),
        expires=_date(raw, "dc:date:expires", source, path) if "dc:date:expires" in raw else None,
        raw=raw,
    )


def _object(value: object, key: str, source: str, where: str) -> dict[str, Any]:
    field = f"{where}.{key}" if where else key
    if not isinstance(value, dict) or key not in value:
        raise ImageListInvalidError(source=source, field=field, problem="missing")
    inner = value[key]
    if not isinstance(inner, dict):
        raise ImageListInvalidError(source=source, field=field, problem="not an object")
    return inner


def _require(body: dict[str, Any], keys: tuple[str, ...], source: str, path: str) -> None:
    for key in keys:
        if key not in body:
            raise ImageListInvalidError(source=source, field=f"{path}.{key}", problem="missing")


def _string(body: dict[str, Any], key: str, source: str, path: str) -> str:
    value = body[key]
    if not isinstance(value, str) or not value.strip():
        raise ImageListInvalidError(
            source=source, field=f"{path}.{key}", problem="empty or not text"
        )
    return value


def _integer(
    body: dict[str, Any], key: str, source: str, path: str, minimum: int = 0, default: int = -1
) -> int:
    if key not in body or body[key] in ("", None):
        if default >= 0:
            return default
        raise ImageListInvalidError(source=source, field=f"{path}.{key}", problem="missing")
    value = body[key]
    # AppDB writes numbers as strings; both forms are accepted, nothing else.
    if isinstance(value, bool) or not (
        isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit())
    ):
        raise ImageListInvalidError(
            source=source, field=f"{path}.{key}", problem=f"{value!r} is not a whole number"
        )
    number = int(value)
    if number < minimum:
        raise ImageListInvalidError(
            source=source, field=f"{path}.{key}", problem=f"{number} is below {minimum}"
        )
    return number


def _date(body: dict[str, Any], key: str, source: str, path: str) -> datetime.datetime:
    value = body.get(key)
    try:
        parsed = datetime.datetime.strptime(str(value), DATE_FORMAT)
    except ValueError:
        raise ImageListInvalidError(
            source=source,
            field=f"{path}.{key}",
            problem=f"{value!r} is not a date like 2026-01-31T00:00:00Z",
        ) from None
    return parsed.replace(tzinfo=datetime.UTC)


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()
