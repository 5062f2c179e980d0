"""What a multi-region image sync run leaves behind (``status.json``), read
by the supervisor for ``appliance status`` and by the REST API.

One record per region: its outcome (ok, partial, failed) with the one-line
reason, GlanceSync's status counts before and after, what was done, and
the region's own log file.
"""

from __future__ import annotations

import datetime
from typing import Literal

from pydantic import Field

from fedcloud_common.model import Model

STATUS_FILE = "status.json"


class RegionRecord(Model):
    region: str = Field(description="GlanceSync's name: REGION, or target:REGION")
    outcome: Literal["ok", "partial", "failed"]
    reason: str = Field("", description="one line, when not ok")
    before: dict[str, int] = Field({}, description="status -> images, before the run")
    after: dict[str, int] = Field({}, description="status -> images, after the run")
    done: dict[str, int] = Field({}, description="what was done: upload, rename, metadata...")
    uploaded_ids: list[str] = Field([], description="master image ids copied in this run")
    log: str = Field("", description="the region's log file of this run")


class RunRecord(Model):
    started: datetime.datetime
    finished: datetime.datetime
    dry_run: bool = False
    regions: list[RegionRecord] = []
    master_bytes_read: int = Field(0, description="bytes read from the master's Glance")
    synced_image_bytes: int = Field(0, description="sizes of the distinct images copied")
    log_dir: str = ""

    @property
    def master_read_ratio(self) -> float:
        """1.0 when each image was read once however many regions took it."""
        if not self.synced_image_bytes:
            return 0.0
        return self.master_bytes_read / self.synced_image_bytes
