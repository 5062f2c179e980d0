"""The appliance's own record of what has been extracted for sure.

cASO writes its per-project ``lastrun`` even when an extractor failed, so
those files cannot tell a complete window from a lost one. This file moves
only after a run the job has judged complete; a failed window is therefore
extracted again, from the same start, by the next run.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from fedcloud_common.files import write_json

FILE_NAME = "fedcloud-watermark.json"


class Watermark:
    def __init__(self, state_dir: Path, start_date: datetime.date) -> None:
        self.path = Path(state_dir) / FILE_NAME
        self.start = datetime.datetime.combine(start_date, datetime.time(), datetime.UTC)

    def extracted_until(self) -> datetime.datetime:
        """Where the next window starts: the last complete run's end, else the start date."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return self.start
        return datetime.datetime.fromisoformat(data["extracted_until"])

    def advance(self, until: datetime.datetime) -> None:
        """Record a complete window ending at ``until``: a crash mid-write keeps the old one."""
        write_json(self.path, {"extracted_until": until.isoformat()})
