"""Stand-in for the Neutron API: answers the read calls nova-api makes.

Not a network service. The demo cloud has no Neutron, but nova-api asks
``/v2.0/ports`` (and security groups, floating IPs) when it renders servers
and fails with 500 when nothing answers. Every ``GET /v2.0/<collection>``
returns that collection empty, in Neutron's JSON shape; everything else is
404, so an unexpected caller fails loudly instead of getting made-up data.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSIONS = {
    "versions": [{"id": "v2.0", "status": "CURRENT", "links": [{"rel": "self", "href": "/v2.0/"}]}]
}


class NeutronStandIn(BaseHTTPRequestHandler):
    server_version = "neutron-standin/1"

    def _reply(self, status: int, body: dict[str, object]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path in ("", "/v2.0"):
            self._reply(200, VERSIONS)
            return
        parts = path.split("/")
        if len(parts) == 3 and parts[1] == "v2.0":
            collection = parts[2].removesuffix(".json").replace("-", "_")
            self._reply(200, {collection: []})
            return
        self._reply(404, {"NeutronError": {"type": "NotFound", "message": path}})

    def log_message(self, fmt: str, *args: object) -> None:
        sys.stderr.write("neutron-standin: " + fmt % args + "\n")


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9696
    ThreadingHTTPServer(("0.0.0.0", port), NeutronStandIn).serve_forever()


if __name__ == "__main__":
    main()
