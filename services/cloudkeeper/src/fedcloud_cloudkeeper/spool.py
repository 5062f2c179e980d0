"""The durable hand-over from the job (and vmcatcher hooks) to the backend.

One JSON file per request in ``<spool>/requests``, written under a hidden
name and renamed into place, so the backend only ever sees whole requests.
A request is removed only after the backend has finished with it: if the
backend dies mid-upload, the request is still there when it restarts, and
replanning against Glance makes the retry safe.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from fedcloud_cloudkeeper.trust import write_json


class Spool:
    def __init__(self, directory: Path) -> None:
        self.requests = Path(directory) / "requests"
        self.failed = Path(directory) / "failed"

    def put(self, request: dict[str, Any]) -> Path:
        """Queue ``request``; names sort in arrival order."""
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json"
        path = self.requests / name
        write_json(path, {**request, "id": name})
        return path

    def pending(self) -> list[Path]:
        if not self.requests.is_dir():
            return []
        return sorted(self.requests.glob("*.json"))

    def load(self, path: Path) -> dict[str, Any] | None:
        """The request, or None if it cannot be read (it is moved to failed/)."""
        try:
            value = json.loads(path.read_text())
            if not isinstance(value, dict) or "kind" not in value:
                raise ValueError("not a request object")
            return value
        except (OSError, ValueError):
            self.reject(path)
            return None

    def done(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def reject(self, path: Path) -> None:
        self.failed.mkdir(parents=True, exist_ok=True)
        path.replace(self.failed / path.name)
