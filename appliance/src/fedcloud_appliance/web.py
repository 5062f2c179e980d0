"""The supervisor's read-only web server: the page at /, JSON at /status.json,
Prometheus metrics at /metrics.

Everything is computed per request from the history and the status files,
so what is shown is never older than the request. The server names no
version (``Server: fedcloud-appliance``): a version tells an attacker what
to try, and operators read it on the page.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fedcloud_appliance import page, status

LOG = logging.getLogger(__name__)
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# The page has no script and loads nothing: forbid both, whatever is injected.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "img-src data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def serve(
    port: int,
    collect: Callable[[], dict[str, Any]],
    host: str = "0.0.0.0",
    metrics: Callable[[], bytes] | None = None,
    api: Callable[[str, str, Any], tuple[int, bytes]] | None = None,
) -> ThreadingHTTPServer:
    """Start the server in a daemon thread; returns it (``server_port``: the port bound).

    ``metrics`` renders /metrics; without it (the config is invalid, so
    there is nothing to measure) /metrics answers 503 and Prometheus marks
    the target down. ``api`` answers /v1/... (GET and POST): region-sync's
    REST API (regionapi.py), which checks each caller's token itself.
    """

    routes: dict[str, tuple[Callable[[], bytes], str]] = {
        "/": (lambda: page.as_html(collect()).encode(), "text/html; charset=utf-8"),
        "/status.json": (lambda: status.as_json(collect()).encode(), "application/json"),
    }
    routes["/index.html"] = routes["/"]
    if metrics is not None:
        routes["/metrics"] = (metrics, METRICS_CONTENT_TYPE)

    class Handler(BaseHTTPRequestHandler):
        def version_string(self) -> str:
            return "fedcloud-appliance"

        def do_POST(self) -> None:
            self._api("POST")

        def _api(self, method: str) -> None:
            path = self.path.split("?", 1)[0]
            if method == "POST":  # no body is used; read what was sent, bounded
                self.rfile.read(min(int(self.headers.get("Content-Length") or 0), 65536))
            if api is None or not path.startswith("/v1/"):
                self.send_error(404 if method == "GET" else 405)
                return
            try:
                code, payload = api(method, path, self.headers)
            except Exception:
                LOG.exception("region API: %s %s failed", method, path)
                code, payload = 500, b'{"error": "internal error; see the supervisor log"}'
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in SECURITY_HEADERS.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path.startswith("/v1/"):
                self._api("GET")
                return
            if path == "/metrics" and metrics is None:
                self.send_error(503, "no metrics while the configuration is invalid (see /)")
                return
            if path not in routes:
                self.send_error(404)
                return
            render, kind = routes[path]
            try:
                payload = render()
            except Exception:  # one broken view must not take the server down
                LOG.exception("status web: %s failed", path)
                self.send_error(500, "could not collect the status; see the supervisor's log")
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in SECURITY_HEADERS.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, fmt: str, *args: object) -> None:
            pass  # status polling and scrapes would drown the job logs

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="status-web").start()
    return server
