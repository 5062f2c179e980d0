"""The region REST API (GlanceSync's server mode), served the way the
supervisor serves it (beside the status page), with tokens checked by the
demo cloud's real Keystone and a sync that really runs fedcloud-glancesync
against the demo's Glances.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests

from fedcloud_appliance import regionapi, web
from fedcloud_common.summary import parse_summary

from .conftest import MARK, Glances, images, put_image, run_cli

pytestmark = pytest.mark.e2e


def token(glances: Glances, user: str, password: str, project: str) -> str:
    reply = requests.post(
        f"{glances.demo.auth_url}/auth/tokens",
        json={
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {"name": user, "domain": {"name": "Default"}, "password": password}
                    },
                },
                "scope": {"project": {"name": project, "domain": {"name": "Default"}}},
            }
        },
        timeout=30,
    )
    reply.raise_for_status()
    return reply.headers["X-Subject-Token"]


@pytest.fixture
def api(clean: Glances, tmp_path: Path) -> Any:
    settings = clean.settings(tmp_path)

    def start(region: str) -> tuple[str, str, str]:
        done = run_cli(settings, tmp_path, "sync", region)
        parsed = parse_summary(done.stdout.strip().splitlines()[-1])
        assert parsed is not None, done.stderr
        return parsed[1], done.stdout.strip().splitlines()[-1], parsed[2].get("reason", "")

    keystone = regionapi.Keystone(clean.demo.auth_url)
    server = web.serve(
        0,
        lambda: {},
        host="127.0.0.1",
        api=regionapi.handler(regionapi.RegionApi(keystone, start, tmp_path)),
    )
    yield f"http://127.0.0.1:{server.server_port}/v1/regions"
    server.shutdown()
    server.server_close()


def call(method: str, url: str, auth: str | None = None) -> requests.Response:
    headers = {"X-Auth-Token": auth} if auth is not None else {}
    return requests.request(method, url, headers=headers, timeout=60)


def test_every_call_needs_a_valid_token_and_a_sync_needs_admin(
    clean: Glances, api: str, tmp_path: Path
) -> None:
    g = clean
    put_image(g.master, "gs-api", b"z" * 100, **{MARK: "1"})
    member = token(g, "alice", "alicepass", "vo-demo")
    admin = token(g, "fedcloud", "fedcloudpass", "fedcloud-ops")
    forged = member[:-4] + ("AAAA" if not member.endswith("AAAA") else "BBBB")

    for method, url in (("GET", api), ("POST", f"{api}/RegionTwo")):
        assert call(method, url).status_code == 401
        assert call(method, url, "not-a-token").status_code == 401
        assert call(method, url, forged).status_code == 401
    # A member reads, but may not start a sync.
    assert call("GET", api, member).json() == {"regions": []}
    refused = call("POST", f"{api}/RegionTwo", member)
    assert refused.status_code == 403
    assert images(g.two) == []

    started = call("POST", f"{api}/RegionTwo", admin)
    assert started.status_code == 202
    task = started.json()
    assert (task["region"], task["status"], task["user"]) == ("RegionTwo", "running", "fedcloud")
    url = f"{api}/RegionTwo/tasks/{task['taskId']}"
    for _ in range(120):
        state = call("GET", url, member).json()
        if state["status"] != "running":
            break
        time.sleep(0.5)
    assert state["status"] == "ok", state
    assert state["result"].startswith("region-sync ok regions=1 failed=0 uploaded=1")
    assert [i.name for i in images(g.two)] == ["gs-api"]
    assert images(g.cloudb) == []  # only the region asked for

    listed = call("GET", api, member).json()["regions"]
    assert [(r["region"], r["status"], r["images"]) for r in listed] == [
        ("RegionTwo", "ok", {"ok": 1})
    ]
    assert call("GET", f"{api}/RegionTwo", member).json()["status"] == "ok"
    assert call("GET", f"{api}/RegionTwo/tasks/nope", member).status_code == 404
    assert call("GET", f"{api}/Nowhere", member).status_code == 404
