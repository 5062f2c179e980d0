"""Point the catalog's public endpoints at where clients reach the container.

Inside the container every service listens on its usual port. Outside, the
ports may be published elsewhere (``DEMO_CLOUD_PORT_OFFSET``, so tests and a
running demo do not collide) under a host name other containers or the host
use (``DEMO_CLOUD_HOST``). Only public endpoints change: services inside the
container keep using the internal ones on 127.0.0.1.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from urllib.parse import urlsplit, urlunsplit

KEYSTONE_DB = "/var/lib/democloud/keystone/keystone.db"


def public_url(internal_url: str, host: str, offset: int) -> str:
    parts = urlsplit(internal_url)
    port = (parts.port or 80) + offset
    return urlunsplit(parts._replace(netloc=f"{host}:{port}"))


def rewrite(db_path: str, host: str, offset: int) -> list[str]:
    with sqlite3.connect(db_path) as db:
        rows = db.execute(
            "SELECT public.id, internal.url FROM endpoint AS public"
            " JOIN endpoint AS internal ON internal.service_id = public.service_id"
            " AND internal.interface = 'internal' WHERE public.interface = 'public'"
        ).fetchall()
        urls = []
        for endpoint_id, internal in rows:
            url = public_url(internal, host, offset)
            db.execute("UPDATE endpoint SET url = ? WHERE id = ?", (url, endpoint_id))
            urls.append(url)
    return sorted(urls)


def main() -> int:
    host = os.environ.get("DEMO_CLOUD_HOST", "localhost")
    offset = int(os.environ.get("DEMO_CLOUD_PORT_OFFSET", "0"))
    for url in rewrite(KEYSTONE_DB, host, offset):
        print(f"public endpoint: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
