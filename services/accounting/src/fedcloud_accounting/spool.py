"""The APEL outgoing spool: a dirq QueueSimple, as cASO writes and SSM reads.

Using dirq itself (not a re-implementation) keeps the layout, the ``.lck``
hard-link locks and the temporary-file rules identical to SSM's, so an
operator can switch between this sender and ssmsend on the same spool.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from dirq.QueueSimple import QueueSimple

from fedcloud_common.files import write_atomically

LOCK_SUFFIX = ".lck"


class Spool:
    def __init__(self, path: Path, quarantine_dir: Path) -> None:
        self.path = Path(path)
        self.quarantine_dir = Path(quarantine_dir)
        self.queue = QueueSimple(str(self.path))

    def clear_stale_locks(self, older_than_s: int) -> int:
        """Unlock what a crashed or killed run left locked; returns how many.

        SSM clears them only at the end of a run, so a message locked by a
        dead run waits two runs; here they are cleared before sending.
        """
        cutoff = time.time() - older_than_s
        stale = [
            lock for lock in self.path.glob(f"*/*{LOCK_SUFFIX}") if lock.stat().st_mtime < cutoff
        ]
        self.queue.purge(maxlock=older_than_s)
        return len(stale)

    def names(self) -> Iterator[str]:
        """Element names, oldest first (names only: memory stays flat)."""
        name = self.queue.first()
        while name:
            yield name
            name = self.queue.next()

    def claim(self, name: str) -> bool:
        """Lock ``name``; False when another sender holds it or it vanished."""
        return bool(self.queue.lock(name, permissive=True))

    def read(self, name: str) -> bytes:
        return (self.path / (name + LOCK_SUFFIX)).read_bytes()

    def accept(self, name: str) -> None:
        """The endpoint has the message: drop it (and its lock)."""
        self.queue.remove(name)

    def release(self, name: str) -> None:
        """Keep the message for the next run."""
        self.queue.unlock(name, permissive=True)

    def quarantine(self, name: str, problem: str) -> Path:
        """Move a message the endpoint would reject out of the queue, with why."""
        target = self.quarantine_dir / name.replace("/", "-")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.path / (name + LOCK_SUFFIX), target)
        Path(f"{target}.error").write_text(problem + "\n", encoding="utf-8")
        self.queue.remove(name)
        return target

    def rewrite(self, name: str, body: bytes) -> None:
        """Replace a claimed message's content with what is still to be sent.

        The element is renamed over in one step, so a crash leaves either the
        old or the new content; the records already delivered are not kept.
        """
        write_atomically(self.path / name, body)

    def quarantine_record(self, name: str, index: int, record: bytes, problem: str) -> Path:
        """Set one record of a message aside (the rest of the message is sent)."""
        target = self.quarantine_dir / f"{name.replace('/', '-')}.record{index}"
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(target, record)
        Path(f"{target}.error").write_text(problem + "\n", encoding="utf-8")
        return target

    def count(self) -> int:
        return int(self.queue.count())

    def quarantined(self) -> int:
        """Messages set aside in the quarantine directory (not their .error notes)."""
        if not self.quarantine_dir.is_dir():
            return 0
        return sum(
            1
            for path in self.quarantine_dir.iterdir()
            if path.is_file() and path.suffix != ".error"
        )


def ensure(path: Path) -> None:
    """Create the spool directory if it does not exist yet (first run)."""
    os.makedirs(path, exist_ok=True)
