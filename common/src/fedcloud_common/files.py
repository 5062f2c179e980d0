"""Writing state files so that a crash never leaves half of one.

Every status, settings, spool and watermark file in the appliance is read
by another process (or by the same one after a restart) at any moment: each
is written to a hidden temporary file in the same directory, flushed to
disk, and renamed over the old one, so a reader sees the old file or the
new one, never a mix.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, content: str | bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``content`` in one rename; ``mode`` for the new file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode("utf-8") if isinstance(content, str) else content
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, value: object, mode: int = 0o644) -> None:
    """``value`` as indented, key-sorted JSON (diffs and ``cat`` stay readable)."""
    write_atomically(path, json.dumps(value, indent=1, sort_keys=True) + "\n", mode)
