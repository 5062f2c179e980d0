"""HTTP: fetch image lists, and download images in one streaming pass.

A download hashes (SHA-512) and counts bytes as they arrive, so the file is
never read again to check it. An interrupted transfer resumes from the
exact byte it reached: within a run with ``Range`` after a backoff, and
across runs (or after a crash) from the ``.part`` file kept beside the
target, whose ``.part.json`` records what it is a part of (URL, size,
checksum) and the server's validator (ETag or Last-Modified), sent back in
``If-Range`` so a file changed on the server starts over instead of being
spliced. Bytes found wrong (size, checksum) are removed; bytes merely
incomplete are kept for the next run. Before starting, the cache disk must
hold the image plus a reserve: filling the disk is how the previous tools
broke the host.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests

from fedcloud_cloudkeeper.errors import DownloadError, FetchError, NoSpaceError
from fedcloud_common.files import write_atomically

LOG = logging.getLogger(__name__)
MAX_LIST_BYTES = 32 * 1024 * 1024
CHUNK = 1024 * 1024
# Image bytes are written as they arrive, in small pieces: a dropped
# connection loses at most this much of what was received.
DOWNLOAD_CHUNK = 64 * 1024


class _Session(requests.Session):
    """A session whose ``verify`` wins over REQUESTS_CA_BUNDLE (requests#3829)."""

    def request(self, method, url, *args, **kwargs):  # type: ignore[no-untyped-def,override]
        kwargs.setdefault("verify", self.verify)
        return super().request(method, url, *args, **kwargs)


def session(verify: bool | str) -> requests.Session:
    http = _Session()
    http.verify = verify
    http.headers["User-Agent"] = "fedcloud-cloudkeeper"
    return http


def fetch_list(http: requests.Session, url: str, token: str | None, timeout_s: float) -> bytes:
    """The list's bytes. The token is AppDB's basic-auth user; redirects are followed."""
    auth = (token, "x-oauth-basic") if token else None
    try:
        with http.get(url, auth=auth, timeout=timeout_s, stream=True) as response:
            if response.status_code != 200:
                raise FetchError(url=url, problem=f"HTTP {response.status_code}")
            body = bytearray()
            for chunk in response.iter_content(CHUNK):
                body += chunk
                if len(body) > MAX_LIST_BYTES:
                    raise FetchError(url=url, problem=f"larger than {MAX_LIST_BYTES} bytes")
            return bytes(body)
    except requests.RequestException as error:
        raise FetchError(url=url, problem=_reason(error)) from None


class Downloader:
    """Downloads into a directory, checking size and SHA-512 on the way."""

    def __init__(
        self,
        http: requests.Session,
        timeout_s: float = 30.0,
        retries: int = 3,
        backoff_s: float = 2.0,
        reserve_bytes: int = 0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.http = http
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.reserve_bytes = reserve_bytes
        self.sleep = sleep
        # Bytes received over the network by this downloader (all threads).
        self.received = 0
        self._counting = threading.Lock()

    def download(self, image: str, url: str, size: int, sha512: str, target: Path) -> Path:
        """``target`` holding exactly the announced bytes, or DownloadError.

        On a DownloadError for wrong bytes nothing is left; for a transfer
        that kept failing, the bytes received so far stay for the next run.
        """
        target.parent.mkdir(parents=True, exist_ok=True)
        part = _Part(target, url, size, sha512)
        hashed = _Hashed()
        validator = part.resumable(hashed)
        free = shutil.disk_usage(target.parent).free
        if free < size - part.have() + self.reserve_bytes:
            part.discard()
            raise NoSpaceError(
                image=image, needed=size + self.reserve_bytes, path=target.parent, free=free
            )
        try:
            for attempt in range(self.retries + 1):
                try:
                    validator = self._transfer(url, part, size, hashed, validator)
                    break
                except _RetryableError as error:
                    if attempt == self.retries:
                        kept = part.have()
                        raise DownloadError(
                            image=image,
                            url=url,
                            problem=f"{error}"
                            + (f" ({kept} bytes kept: the next run resumes)" if kept else ""),
                        ) from None
                    LOG.warning("%s: %s; retrying (%d/%d)", image, error, attempt + 1, self.retries)
                    self.sleep(self.backoff_s * 2**attempt)
            got = part.have()
            if got != size:
                raise _WrongBytesError(f"size {got} != hv:size {size}")
            if hashed.digest.hexdigest() != sha512:
                raise _WrongBytesError("SHA-512 differs from sl:checksum:sha512")
            os.replace(part.path, target)
            part.meta.unlink(missing_ok=True)
            return target
        except _WrongBytesError as error:
            part.discard()
            raise DownloadError(image=image, url=url, problem=str(error)) from None
        except DownloadError as error:
            if "bytes kept" not in str(error):  # refused by the server: nothing to resume
                part.discard()
            raise

    def _transfer(
        self, url: str, part: _Part, size: int, hashed: _Hashed, validator: str | None
    ) -> str | None:
        """Fetch from the byte the part file ends at; the server's validator."""
        have = part.have()
        headers = {"Range": f"bytes={have}-"} if have else {}
        if have and validator:
            headers["If-Range"] = validator
        try:
            with self.http.get(url, headers=headers, timeout=self.timeout_s, stream=True) as reply:
                if have and reply.status_code == 206 and _range_start(reply) == have:
                    mode = "ab"
                elif reply.status_code in (200, 206):
                    # Range ignored, or the file changed (If-Range): start over.
                    if reply.status_code == 206:
                        raise _RetryableError("the server resumed from another byte")
                    mode, have = "wb", 0
                    hashed.digest = hashlib.sha512()
                    validator = _validator(reply)
                    part.describe(validator)
                elif reply.status_code in (416,):  # nothing after our last byte
                    raise _WrongBytesError(f"the server's file ends before hv:size {size} bytes")
                elif reply.status_code >= 500 or reply.status_code == 429:
                    raise _RetryableError(f"HTTP {reply.status_code}")
                else:
                    raise DownloadError(
                        image=part.path.stem, url=url, problem=f"HTTP {reply.status_code}"
                    )
                _check_announced_size(reply, size)
                last_report = time.monotonic()
                with part.path.open(mode) as out:
                    for chunk in reply.iter_content(DOWNLOAD_CHUNK):
                        have += len(chunk)
                        if have > size:
                            raise _WrongBytesError(f"more than hv:size {size} bytes")
                        hashed.digest.update(chunk)
                        out.write(chunk)
                        with self._counting:
                            self.received += len(chunk)
                        if time.monotonic() - last_report > 10:
                            last_report = time.monotonic()
                            LOG.info(
                                "%s: %d%% of %d bytes", part.path.stem, 100 * have // size, size
                            )
            if have < size:
                raise _RetryableError(f"connection ended after {have} of {size} bytes")
        except requests.RequestException as error:
            raise _RetryableError(_reason(error)) from None
        return validator


class _Part:
    """The partial download beside ``target``, and what it is a part of."""

    def __init__(self, target: Path, url: str, size: int, sha512: str) -> None:
        self.path = target.with_name(target.name + ".part")
        self.meta = target.with_name(target.name + ".part.json")
        self.wanted = {"url": url, "size": size, "sha512": sha512}

    def have(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def resumable(self, hashed: _Hashed) -> str | None:
        """Keep a part of the same file (hashing its bytes again); the validator to send."""
        try:
            meta = json.loads(self.meta.read_text())
        except (OSError, ValueError):
            meta = None
        if (
            not isinstance(meta, dict)
            or {k: meta.get(k) for k in self.wanted} != self.wanted
            or not self.path.exists()
            or self.have() > int(self.wanted["size"])
        ):
            self.discard()
            return None
        with self.path.open("rb") as data:
            while chunk := data.read(CHUNK):
                hashed.digest.update(chunk)
        LOG.info("%s: resuming at byte %d", self.path.stem, self.have())
        validator = meta.get("validator")
        return str(validator) if validator else None

    def describe(self, validator: str | None) -> None:
        write_atomically(self.meta, json.dumps({**self.wanted, "validator": validator}))

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
        self.meta.unlink(missing_ok=True)


def _validator(reply: requests.Response) -> str | None:
    """What identifies this version of the file: a strong ETag, else Last-Modified."""
    etag = reply.headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return reply.headers.get("Last-Modified")


def _check_announced_size(reply: requests.Response, size: int) -> None:
    """Fail at once when the server says its file is not hv:size bytes long."""
    if reply.headers.get("Content-Encoding"):
        return  # the length is of the encoded bytes
    total: str | None
    if reply.status_code == 206:
        total = reply.headers.get("Content-Range", "").rpartition("/")[2]
    else:
        total = reply.headers.get("Content-Length")
    if not total or not total.isdigit() or int(total) == size:
        return
    if int(total) > size:
        raise _WrongBytesError(f"more than hv:size {size} bytes (the server has {total})")
    raise _WrongBytesError(f"the server's file has {total} bytes, fewer than hv:size {size}")


def _range_start(reply: requests.Response) -> int | None:
    value = reply.headers.get("Content-Range", "")  # bytes START-END/TOTAL
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


class _WrongBytesError(Exception):
    """The bytes are not the image: keeping them for a resume would be wrong."""


class _RetryableError(Exception):
    pass


class _Hashed:
    """The running SHA-512 of the partial file, kept across resumed attempts."""

    def __init__(self) -> None:
        self.digest = hashlib.sha512()


def _reason(error: requests.RequestException) -> str:
    return f"{type(error).__name__}: {error}"[:300]
