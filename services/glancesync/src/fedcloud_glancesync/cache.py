"""Read each master image once, however many regions need it.

A bounded local cache on disk: the first region that needs an image streams
it from the master's Glance API into a file (checked against the master's
SHA-512 as it arrives, never held in memory), and every region uploads from
that file. Chosen over a tee to several uploads because regions run at
their own pace (a slow or failing region must not stall the others'
streams) and because a region's upload only starts from bytes already
verified: a master image whose data does not match its checksum is never
sent anywhere.

Files stay for the run (regions sync one after another too, and a region
only says what it needs once it has listed its Glance), within
``capacity`` bytes: when a new image needs room, files no upload is using
are evicted, those no region still plans first. An evicted file a region
needs later is fetched again (more master reads, never more disk); an image
larger than the whole capacity is still fetched, alone. The run clears the
cache when it ends.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from fedcloud_glancesync.images import Image

Fetch = Callable[[Image, BinaryIO], int]


@dataclasses.dataclass
class _Entry:
    path: Path | None = None
    size: int = 0
    pins: int = 0
    fetching: bool = False


class _Counting:
    """A file that counts the bytes written to it."""

    def __init__(self, file: BinaryIO) -> None:
        self.file, self.count = file, 0

    def write(self, data: bytes) -> int:
        self.count += len(data)
        return self.file.write(data)

    def __enter__(self) -> _Counting:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()


class MasterCache:
    def __init__(self, fetch: Fetch, directory: Path, capacity: int) -> None:
        self._fetch = fetch
        self._dir = directory
        self._capacity = capacity
        self._entries: dict[str, _Entry] = {}
        self._needs: collections.Counter[str] = collections.Counter()
        # A master image that failed its check fails every region the same
        # way, without reading it again.
        self._failed: dict[str, BaseException] = {}
        self._lock = threading.Condition()
        self.bytes_read = 0
        self.reads = 0
        directory.mkdir(parents=True, exist_ok=True)

    def expect(self, image_ids: list[str]) -> None:
        """A region plans to upload these: keep them until it is done with each."""
        with self._lock:
            self._needs.update(image_ids)

    def done(self, image_id: str) -> None:
        """A region is done with an image (uploaded, failed or given up)."""
        with self._lock:
            if self._needs[image_id] > 0:
                self._needs[image_id] -= 1

    @contextlib.contextmanager
    def open(self, image: Image) -> Iterator[Path]:
        """The image's verified bytes in a local file, pinned while in use."""
        entry = self._acquire(image)
        try:
            assert entry.path is not None
            yield entry.path
        finally:
            with self._lock:
                entry.pins -= 1
                self._lock.notify_all()

    def clear(self) -> None:
        with self._lock:
            for entry in self._entries.values():
                if entry.path:
                    entry.path.unlink(missing_ok=True)
            self._entries.clear()

    def _acquire(self, image: Image) -> _Entry:
        with self._lock:
            while True:
                if image.id in self._failed:
                    raise self._failed[image.id]
                entry = self._entries.get(image.id)
                if entry and entry.path is not None:
                    entry.pins += 1
                    return entry
                if entry and entry.fetching:
                    self._lock.wait()
                    continue
                if self._room_for(image.size):
                    break
                self._lock.wait()
            entry = self._entries[image.id] = _Entry(size=image.size, fetching=True)
        try:
            path = self._download(image)
        except BaseException as error:
            with self._lock:
                del self._entries[image.id]
                if isinstance(error, Exception) and getattr(error, "permanent", False):
                    self._failed[image.id] = error
                self._lock.notify_all()
            raise error
        with self._lock:
            entry.path, entry.fetching, entry.pins = path, False, 1
            self._lock.notify_all()
        return entry

    def _download(self, image: Image) -> Path:
        handle, name = tempfile.mkstemp(dir=self._dir, prefix="master-")
        path = Path(name)
        out = _Counting(os.fdopen(handle, "wb"))
        try:
            with out:
                self._fetch(image, out)  # type: ignore[arg-type]
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        finally:
            with self._lock:  # what was read counts, whether it passed its check or not
                self.bytes_read += out.count
                self.reads += 1
        return path

    def _used(self) -> int:
        return sum(e.size for e in self._entries.values())

    def _room_for(self, size: int) -> bool:
        """Evict unpinned files until ``size`` fits; True when it does (or nothing is left)."""
        if self._used() + size <= self._capacity:
            return True
        idle = [
            (self._needs[image_id] > 0, image_id)
            for image_id, entry in self._entries.items()
            if entry.path is not None and entry.pins == 0
        ]
        for _, image_id in sorted(idle):  # what no region still plans goes first
            entry = self._entries.pop(image_id)
            assert entry.path is not None
            entry.path.unlink(missing_ok=True)
            if self._used() + size <= self._capacity:
                return True
        # Larger than the whole cache: fetch it once nothing else is held.
        return not self._entries
