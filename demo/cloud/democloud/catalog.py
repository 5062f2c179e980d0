"""Point the catalog's public endpoints at where clients reach the container.

Inside the container every service listens on its usual port. Outside, the
ports may be published elsewhere (``DEMO_CLOUD_PORT_OFFSET``, so tests and a
running demo do not collide) under a host name other containers or the host
use (``DEMO_CLOUD_HOST``). Only public endpoints change: services inside the
container keep using the internal ones on 127.0.0.1. Endpoints of services
this container does not run (``DEMOCLOUD_SERVICES``, see democloud-start)
leave the catalog, so clients never see a region that cannot answer.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from urllib.parse import urlsplit, urlunsplit

KEYSTONE_DB = "/var/lib/democloud/keystone/keystone.db"
# The internal port of each service democloud-start may leave out.
OPTIONAL_PORTS = {"glance": 9292, "glance-regiontwo": 9293, "nova": 8774, "swift": 8880}


def public_url(internal_url: str, host: str, offset: int) -> str:
    parts = urlsplit(internal_url)
    port = (parts.port or 80) + offset
    return urlunsplit(parts._replace(netloc=f"{host}:{port}"))


def drop_unserved(db: sqlite3.Connection, services: list[str]) -> None:
    """Remove every endpoint of a service whose internal URL is not served here."""
    unserved = {port for name, port in OPTIONAL_PORTS.items() if name not in services}
    rows = db.execute(
        "SELECT public.id, internal.url FROM endpoint AS public"
        " JOIN endpoint AS internal ON internal.service_id = public.service_id"
        " AND internal.region_id = public.region_id AND internal.interface = 'internal'"
    ).fetchall()
    for endpoint_id, internal in rows:
        if urlsplit(internal).port in unserved:
            db.execute("DELETE FROM endpoint WHERE id = ?", (endpoint_id,))


def rewrite(db_path: str, host: str, offset: int, services: list[str] | None = None) -> list[str]:
    with sqlite3.connect(db_path) as db:
        if services is not None:
            drop_unserved(db, services)
        rows = db.execute(
            "SELECT public.id, internal.url FROM endpoint AS public"
            " JOIN endpoint AS internal ON internal.service_id = public.service_id"
            " AND internal.region_id = public.region_id"
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
    services = os.environ.get("DEMOCLOUD_SERVICES")
    for url in rewrite(KEYSTONE_DB, host, offset, services.split() if services else None):
        print(f"public endpoint: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
