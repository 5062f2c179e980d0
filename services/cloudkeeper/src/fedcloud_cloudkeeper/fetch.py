"""HTTP: fetch image lists, and download images in one streaming pass.

A download hashes (SHA-512) and counts bytes as they arrive, so the file is
never read again to check it; an interrupted transfer resumes with ``Range``
after a backoff, and a failure of any kind removes the partial file. Before
starting, the cache disk must hold the image plus a reserve: filling the
disk is how the previous tools broke the host.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import requests

from fedcloud_cloudkeeper.errors import DownloadError, FetchError, NoSpaceError

LOG = logging.getLogger(__name__)
MAX_LIST_BYTES = 32 * 1024 * 1024
CHUNK = 1024 * 1024


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

    def download(self, image: str, url: str, size: int, sha512: str, target: Path) -> Path:
        """``target`` holding exactly the announced bytes, or DownloadError (no file left)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(target.parent).free
        if free < size + self.reserve_bytes:
            raise NoSpaceError(
                image=image, needed=size + self.reserve_bytes, path=target.parent, free=free
            )
        part = target.with_name(target.name + ".part")
        part.unlink(missing_ok=True)
        hashed = _Hashed()
        try:
            for attempt in range(self.retries + 1):
                try:
                    self._transfer(url, part, size, hashed)
                    break
                except _RetryableError as error:
                    if attempt == self.retries:
                        raise DownloadError(image=image, url=url, problem=str(error)) from None
                    LOG.warning("%s: %s; retrying (%d/%d)", image, error, attempt + 1, self.retries)
                    self.sleep(self.backoff_s * 2**attempt)
            got = part.stat().st_size
            if got != size:
                raise DownloadError(image=image, url=url, problem=f"size {got} != hv:size {size}")
            if hashed.digest.hexdigest() != sha512:
                raise DownloadError(
                    image=image, url=url, problem="SHA-512 differs from sl:checksum:sha512"
                )
            os.replace(part, target)
            return target
        except BaseException:
            part.unlink(missing_ok=True)
            raise

    def _transfer(self, url: str, part: Path, size: int, hashed: _Hashed) -> None:
        have = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            with self.http.get(url, headers=headers, timeout=self.timeout_s, stream=True) as reply:
                if have and reply.status_code == 206:
                    mode = "ab"
                elif reply.status_code == 200:
                    mode = "wb"
                    if have:  # the server ignored Range: start over, hash afresh
                        hashed.digest = hashlib.sha512()
                        have = 0
                elif reply.status_code >= 500 or reply.status_code == 429:
                    raise _RetryableError(f"HTTP {reply.status_code}")
                else:
                    raise DownloadError(
                        image=part.stem, url=url, problem=f"HTTP {reply.status_code}"
                    )
                last_report = time.monotonic()
                with part.open(mode) as out:
                    for chunk in reply.iter_content(CHUNK):
                        have += len(chunk)
                        if have > size:
                            raise DownloadError(
                                image=part.stem, url=url, problem=f"more than hv:size {size} bytes"
                            )
                        hashed.digest.update(chunk)
                        out.write(chunk)
                        if time.monotonic() - last_report > 10:
                            last_report = time.monotonic()
                            LOG.info("%s: %d%% of %d bytes", part.stem, 100 * have // size, size)
            if have < size:
                raise _RetryableError(f"connection ended after {have} of {size} bytes")
        except requests.RequestException as error:
            raise _RetryableError(_reason(error)) from None


class _RetryableError(Exception):
    pass


class _Hashed:
    """The running SHA-512 of the partial file, kept across resumed attempts."""

    def __init__(self) -> None:
        self.digest = hashlib.sha512()


def _reason(error: requests.RequestException) -> str:
    return f"{type(error).__name__}: {error}"[:300]
