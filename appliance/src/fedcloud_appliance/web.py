"""The status page: HTML at /, JSON at /status.json, read-only."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fedcloud_appliance import status


def serve(port: int, collect: Callable[[], dict[str, Any]], host: str = "0.0.0.0"):
    """Start the status server in a daemon thread; returns the server."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                body, kind = status.as_html(collect()), "text/html; charset=utf-8"
            elif path == "/status.json":
                body, kind = status.as_json(collect()), "application/json"
            else:
                self.send_error(404)
                return
            payload = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, fmt: str, *args: object) -> None:
            pass  # status polling would drown the job logs

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="status-web").start()
    return server
