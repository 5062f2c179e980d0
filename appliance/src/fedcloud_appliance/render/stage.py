"""Secret files, staged for one service's non-root user.

The host's secret files are root-only (0600). Each service's container runs
as its own user, so the render step copies the files it needs into
``secrets/<section>/`` of the rendered volume, owned by that user and
readable by it alone (0400), and renders the path the container sees.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from fedcloud_common.openstack import FILE_KEYS, Credentials
from fedcloud_common.services import RENDERED_DIR

Stage = Callable[[Path | None], str | None]


def stager(directory: Path, uid: int) -> Stage:
    """Copies secret files for one service's user; returns the path it sees."""

    staged: dict[Path, str] = {}

    def stage(path: Path | None) -> str | None:
        if path is None:
            return None
        if path in staged:
            return staged[path]
        if not directory.exists():
            directory.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            directory.mkdir(mode=0o700)
            os.chown(directory, uid, uid)
        target = directory / path.name
        if target.exists():  # two secrets with one name: keep both
            target = directory / f"{len(list(directory.iterdir()))}-{path.name}"
        shutil.copyfile(path, target)
        os.chown(target, uid, uid)
        os.chmod(target, 0o400)
        staged[path] = f"{RENDERED_DIR}/{target.relative_to(directory.parent.parent)}"
        return staged[path]

    return stage


def credentials(auth: Credentials, stage: Stage) -> Credentials:
    """The same credentials, every file (the CA bundle too) staged for the service."""
    return auth.model_copy(
        update={
            key: Path(staged)
            for key in FILE_KEYS
            if (staged := stage(getattr(auth, key))) is not None
        }
    )
