"""``make-backups``: one CSV of image metadata per region, GlanceSync's fields.

Fields: region, name, id, status, size, checksum, owner, is_public, and the
user properties (as a JSON object, so the file is read back without eval).
"""

from __future__ import annotations

import csv
import datetime
import json
from pathlib import Path

from fedcloud_glancesync.images import Image

FIELDS = ("region", "name", "id", "status", "size", "checksum", "owner", "is_public",
          "user_properties")  # fmt: skip


def backup_dir(root: Path) -> Path:
    now = datetime.datetime.now(datetime.UTC)
    return root / f"backup_glance_{now:%Y-%m-%dT%H:%M:%S.%f}"


def write_backup(directory: Path, region: str, images: list[Image]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"backup_{region.replace(':', '_')}.csv"
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(FIELDS)
        for image in sorted(images, key=lambda i: (i.name, i.id)):
            writer.writerow(
                (
                    region,
                    image.name,
                    image.id,
                    image.status,
                    image.size,
                    image.checksum or "",
                    image.owner or "",
                    image.is_public,
                    json.dumps(image.properties, sort_keys=True),
                )
            )
    return path
