"""Deciding whether a fetched image list is trusted, and remembering the last one.

A list is trusted when its signature verifies against the CA directory, the
signer's DN and issuer equal both the list's own ``hv:endorser`` and the
endorser configured for it, it is within its validity dates, and it is not
older than the last list we trusted under that name (a replay of an old,
validly signed list would otherwise bring back images since withdrawn).
The last trusted list is kept on disk: expiry of what is installed is
judged on it, not on whatever the server returns today.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from fedcloud_cloudkeeper import imagelist, smime
from fedcloud_cloudkeeper.config import ListSource
from fedcloud_cloudkeeper.errors import ImageListUntrustedError
from fedcloud_cloudkeeper.imagelist import ImageList
from fedcloud_common.files import write_atomically


def verify_list(
    message: bytes,
    source: ListSource,
    ca_path: Path,
    now: datetime.datetime,
    last_trusted: ImageList | None = None,
) -> tuple[ImageList, bytes]:
    """The trusted list and the exact signed bytes it was parsed from."""
    where = f"{source.name} ({source.url})"
    signed = smime.verify(message, ca_path, where)
    image_list = imagelist.parse(signed.content, where)
    endorser = image_list.endorser
    for what, got, listed, configured in (
        ("signer DN", signed.signer_dn, endorser.dn, source.endorser_dn),
        ("signer CA", signed.issuer_dn, endorser.ca, source.endorser_ca),
    ):
        if _dn(got) != _dn(listed):
            raise ImageListUntrustedError(
                source=where, problem=f"{what} {got!r} is not the list's hv:endorser {listed!r}"
            )
        if _dn(got) != _dn(configured):
            raise ImageListUntrustedError(
                source=where,
                problem=f"{what} {got!r} is not the configured endorser {configured!r}",
            )
    if source.vo and image_list.vo != source.vo:
        raise ImageListUntrustedError(
            source=where,
            problem=f"ad:vo is {image_list.vo!r}, the list is configured for {source.vo!r}",
        )
    if image_list.expired(now):
        raise ImageListUntrustedError(
            source=where, problem=f"expired at {image_list.expires:%Y-%m-%dT%H:%M:%SZ}"
        )
    if image_list.not_yet_valid(now):
        raise ImageListUntrustedError(
            source=where, problem=f"not valid before {image_list.created:%Y-%m-%dT%H:%M:%SZ}"
        )
    if last_trusted is not None and image_list.created < last_trusted.created:
        raise ImageListUntrustedError(
            source=where,
            problem=(
                f"created {image_list.created:%Y-%m-%dT%H:%M:%SZ}, older than the last trusted "
                f"version ({last_trusted.created:%Y-%m-%dT%H:%M:%SZ}): a replay"
            ),
        )
    return image_list, signed.content


def _dn(value: str) -> str:
    return "/".join(part.strip() for part in value.strip().split("/"))


class TrustStore:
    """The last trusted signed content of each list, one file per list name."""

    def __init__(self, state_dir: Path) -> None:
        self.directory = Path(state_dir) / "trusted"

    def load(self, name: str) -> ImageList | None:
        path = self.directory / f"{name}.json"
        if not path.exists():
            return None
        return imagelist.parse(path.read_bytes(), f"{name} (last trusted, {path})")

    def content(self, name: str) -> bytes:
        return (self.directory / f"{name}.json").read_bytes()

    def save(self, name: str, content: bytes) -> None:
        write_atomically(self.directory / f"{name}.json", content)

    def forget(self, name: str) -> None:
        (self.directory / f"{name}.json").unlink(missing_ok=True)
