"""Stand-in for the Neutron API: the read calls nova-api and cASO make.

Not a network service: the demo cloud has no Neutron server (it needs a
message queue and agents this container does not run). nova-api asks
``/v2.0/ports`` (and security groups) when it renders servers and fails
with 500 when nothing answers; cASO's neutron extractor lists
``/v2.0/floatingips`` to account public IPs. Every ``GET
/v2.0/<collection>`` answers in Neutron's JSON shape: ``floatingips`` with
the seeded floating IPs (``democloud.data.FLOATING_IPS``) of the caller's
project, as Neutron's policy shows a project-scoped token, every other
collection empty; everything else is 404, so an unexpected caller fails
loudly instead of getting made-up data.

The caller's project is read from its token, which Keystone validates for
its own subject (``GET /v3/auth/tokens`` with the token on both headers);
an unknown token sees no floating IP.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from democloud import data

VERSIONS = {
    "versions": [{"id": "v2.0", "status": "CURRENT", "links": [{"rel": "self", "href": "/v2.0/"}]}]
}
KEYSTONE = "http://127.0.0.1:5000/v3"


def token_project(token: str) -> str | None:
    """The id of the project ``token`` is scoped to, as Keystone says; None if not valid."""
    if not token:
        return None
    request = urllib.request.Request(
        f"{KEYSTONE}/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": token}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            body = json.load(reply)
    except (urllib.error.URLError, ValueError, OSError):
        return None
    project = body.get("token", {}).get("project")
    return project.get("id") if project else None


def project_ids(token: str) -> dict[str, str]:
    """Project name -> id, read with the caller's token (no credentials of our own)."""
    request = urllib.request.Request(f"{KEYSTONE}/auth/projects", headers={"X-Auth-Token": token})
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return {p["name"]: p["id"] for p in json.load(reply).get("projects", [])}
    except (urllib.error.URLError, ValueError, OSError):
        return {}


def floating_ips(token: str, query: dict[str, list[str]]) -> list[dict[str, object]]:
    project = token_project(token)
    if project is None:
        return []
    wanted = query.get("project_id", []) + query.get("tenant_id", [])
    if wanted and project not in wanted:
        return []
    names = {v: k for k, v in project_ids(token).items()}
    return [
        {
            "id": data.fixed_id("floatingip", fip.address),
            "floating_ip_address": fip.address,
            "project_id": project,
            "tenant_id": project,
            "status": "ACTIVE",
            "created_at": fip.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "updated_at": fip.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        for fip in data.FLOATING_IPS
        if fip.project == names.get(project)
    ]


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
        url = urlsplit(self.path)
        path = url.path.rstrip("/")
        if path in ("", "/v2.0"):
            self._reply(200, VERSIONS)
            return
        parts = path.split("/")
        if len(parts) == 3 and parts[1] == "v2.0":
            collection = parts[2].removesuffix(".json").replace("-", "_")
            if collection == "floatingips":
                token = self.headers.get("X-Auth-Token", "")
                self._reply(200, {collection: floating_ips(token, parse_qs(url.query))})
                return
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
