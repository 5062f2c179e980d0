"""The read-once cache of master images: each image fetched once for many
regions, never more than the capacity on disk, failures shared."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import BinaryIO

import pytest

from fedcloud_glancesync.cache import MasterCache
from fedcloud_glancesync.glance import DataMismatchError
from fedcloud_glancesync.images import Image


def image(name: str, size: int) -> Image:
    return Image(name, name, "active", size, None, None, "p", "public", {})


class Master:
    """Serves ``size`` bytes per image, slowly, counting reads."""

    def __init__(self, bad: set[str] | None = None) -> None:
        self.reads: list[str] = []
        self.bad = bad or set()
        self.lock = threading.Lock()

    def fetch(self, img: Image, out: BinaryIO) -> int:
        with self.lock:
            self.reads.append(img.id)
        time.sleep(0.05)
        out.write(b"x" * img.size)
        if img.id in self.bad:
            raise DataMismatchError(f"{img.name}: bad")
        return img.size


def test_three_regions_read_each_image_once(tmp_path: Path) -> None:
    master = Master()
    cache = MasterCache(master.fetch, tmp_path, capacity=10_000)
    images = [image(f"i{n}", 100 * (n + 1)) for n in range(5)]
    cache.expect([i.id for i in images] * 3)
    seen: list[int] = []

    def region() -> None:
        for img in images:
            with cache.open(img) as path:
                seen.append(path.stat().st_size)
            cache.done(img.id)

    threads = [threading.Thread(target=region) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(master.reads) == sorted(i.id for i in images)
    assert cache.bytes_read == sum(i.size for i in images)
    assert sorted(seen) == sorted([i.size for i in images] * 3)
    assert len(list(tmp_path.iterdir())) == 5  # kept for the run, within the capacity
    cache.clear()
    assert list(tmp_path.iterdir()) == []


def test_regions_one_after_another_read_each_image_once_too(tmp_path: Path) -> None:
    master = Master()
    cache = MasterCache(master.fetch, tmp_path, capacity=10_000)
    images = [image(f"i{n}", 100) for n in range(3)]
    for _ in range(3):  # each region says what it needs only when its turn comes
        cache.expect([i.id for i in images])
        for img in images:
            with cache.open(img):
                pass
            cache.done(img.id)
    assert master.reads == ["i0", "i1", "i2"]


def test_the_capacity_bounds_the_disk(tmp_path: Path) -> None:
    master = Master()
    cache = MasterCache(master.fetch, tmp_path, capacity=150)
    a, b, c = image("a", 100), image("b", 100), image("c", 100)
    cache.expect(["a", "b", "c", "a"])  # a is needed again later
    for img in (a, b, c):
        with cache.open(img):
            assert sum(p.stat().st_size for p in tmp_path.iterdir()) <= 150
        cache.done(img.id)
    with cache.open(a):  # evicted for b: read again rather than overfill
        pass
    assert master.reads == ["a", "b", "c", "a"]
    with cache.open(c):  # evicted for a, though no region plans it: read again
        pass
    assert master.reads == ["a", "b", "c", "a", "c"]


def test_a_bad_master_image_fails_every_region_with_one_read(tmp_path: Path) -> None:
    master = Master(bad={"bad"})
    cache = MasterCache(master.fetch, tmp_path, capacity=1000)
    for _ in range(3):
        with pytest.raises(DataMismatchError), cache.open(image("bad", 10)):
            pass
    assert master.reads == ["bad"]
    assert cache.bytes_read == 10  # read (once), though never used
    assert list(tmp_path.iterdir()) == []
