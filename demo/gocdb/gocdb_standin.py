#!/usr/bin/env python3
"""GOCDB stand-in: answers cloud-info-provider's one GOCDB query, over real TLS.

cloud-info-provider 1.2.0 calls ``https://goc.egi.eu/gocdbpi/public/?method=
get_service&service_type=...`` unconditionally and crashes when it cannot.
GOCDB cannot run here, so this small server speaks its public API's XML for
``get_service`` (only) from a JSON list of services.

It is reachable under the real name without touching /etc/hosts:

- as an HTTP proxy (``--proxy-port``): clients given ``HTTPS_PROXY`` send
  ``CONNECT goc.egi.eu:443``; the stand-in accepts only that target and then
  terminates TLS itself with a certificate for goc.egi.eu (issued by a demo
  CA the client trusts through ``REQUESTS_CA_BUNDLE``). Everything else is
  refused, so ``NO_PROXY`` must list the cloud's own hosts.
- as a plain HTTPS server (``--https-port``), for a container that maps
  goc.egi.eu to it with ``--add-host``.

Services file: ``[{"primary_key": "1G0", "site": "SITE", "type":
"org.openstack.nova", "url": "https://...", "hostname": "..."}]``.
Standard library only: it runs in any Python 3.11 container.
"""

from __future__ import annotations

import argparse
import json
import socketserver
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

GOCDB_HOST = "goc.egi.eu"


def service_xml(services: list[dict], service_type: str | None) -> str:
    """GOCDB's ``get_service`` document for the matching services."""
    items = []
    for svc in services:
        if service_type and svc["type"] != service_type:
            continue
        fields = {
            "PRIMARY_KEY": svc["primary_key"],
            "HOSTNAME": svc.get("hostname") or urlsplit(svc["url"]).hostname or "",
            "GOCDB_PORTAL_URL": f"https://{GOCDB_HOST}/portal/index.php?Page_Type=Service"
            f"&id={svc['primary_key']}",
            "BETA": "N",
            "SERVICE_TYPE": svc["type"],
            "IN_PRODUCTION": "Y",
            "NODE_MONITORED": "Y",
            "SITENAME": svc["site"],
            "COUNTRY_NAME": svc.get("country", "Nowhere"),
            "COUNTRY_CODE": svc.get("country_code", "XX"),
            "ROC_NAME": svc.get("roc", "NGI_DEMO"),
            "URL": svc["url"],
        }
        body = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in fields.items())
        items.append(
            f'<SERVICE_ENDPOINT PRIMARY_KEY="{escape(svc["primary_key"])}">{body}'
            "<ENDPOINTS/><SCOPES><SCOPE>EGI</SCOPE></SCOPES><EXTENSIONS/></SERVICE_ENDPOINT>"
        )
    return '<?xml version="1.0" encoding="UTF-8"?>\n<results>' + "".join(items) + "</results>\n"


class GocdbHandler(BaseHTTPRequestHandler):
    """GET /gocdbpi/public/?method=get_service; CONNECT goc.egi.eu:443 when proxying."""

    services: ClassVar[list[dict]] = []
    tls: ClassVar[ssl.SSLContext | None] = None
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path.rstrip("/") != "/gocdbpi/public" or query.get("method") != ["get_service"]:
            self._send(404, "text/plain", "the GOCDB stand-in answers get_service only\n")
            return
        service_type = (query.get("service_type") or [None])[0]
        self._send(200, "text/xml", service_xml(self.services, service_type))

    def do_CONNECT(self) -> None:
        host, _, port = self.path.partition(":")
        if host != GOCDB_HOST or port not in ("", "443") or self.tls is None:
            self._send(403, "text/plain", f"this proxy only reaches {GOCDB_HOST}:443\n")
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        conn = self.tls.wrap_socket(self.connection, server_side=True)
        # Serve the tunnelled HTTPS requests on the same handler class.
        type(self)(conn, self.client_address, self.server)
        self.close_connection = True

    def _send(self, code: int, ctype: str, text: str) -> None:
        data = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt: str, *args: object) -> None:
        print(f"gocdb-standin {self.address_string()} {fmt % args}", flush=True)


def serve(
    services: list[dict],
    cert: Path,
    key: Path,
    proxy_port: int | None,
    https_port: int | None,
    host: str = "127.0.0.1",
) -> list[socketserver.BaseServer]:
    """Start the listeners in threads and return them (call ``shutdown`` to stop)."""
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    handler = type("Handler", (GocdbHandler,), {"services": services, "tls": tls})
    servers: list[socketserver.BaseServer] = []
    if proxy_port is not None:
        servers.append(ThreadingHTTPServer((host, proxy_port), handler))
    if https_port is not None:
        https = ThreadingHTTPServer((host, https_port), handler)
        https.socket = tls.wrap_socket(https.socket, server_side=True)
        servers.append(https)
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    return servers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=Path, required=True)
    parser.add_argument("--cert", type=Path, required=True, help="certificate for goc.egi.eu")
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--proxy-port", type=int)
    parser.add_argument("--https-port", type=int)
    args = parser.parse_args()
    servers = serve(
        json.loads(args.services.read_text()),
        args.cert,
        args.key,
        args.proxy_port,
        args.https_port,
        args.host,
    )
    print(f"gocdb-standin listening: {[s.server_address for s in servers]}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
