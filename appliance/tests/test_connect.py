"""``config check --connect`` against the demo cloud's real Keystone and a list server."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedcloud_appliance import cli
from tests.support.ports import free_port


@pytest.fixture
def list_server() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/good.list":
                body = b"signed list bytes"
                self.send_response(200)
            else:
                body = b"no such list"
                self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port(range(46100, 46200))), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _config(tmp_path: Path, auth_url: str, password: str, lists: str) -> Path:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "password").write_text(password + "\n")
    os.chmod(secrets / "password", 0o600)
    path = tmp_path / "appliance.yaml"
    path.write_text(
        "site: {name: CONNECT-TEST, hostname: cloud.test}\n"
        f"openstack: {{auth_url: '{auth_url}', username: fedcloud, "
        f"password_file: {secrets / 'password'}, project_name: fedcloud-ops, region: RegionOne}}\n"
        "images:\n  endorser: {dn: /CN=s, ca: /CN=c}\n"
        + (f"  lists:\n{lists}" if lists else "")
        + "bdii: {enabled: false}\n"
    )
    return path


@pytest.mark.e2e
def test_connect_logs_in_and_fetches_each_list_saying_what_works(
    demo_cloud, list_server, tmp_path, capsys
):
    lists = (
        f"    - {{name: good, url: '{list_server}/good.list', project: p}}\n"
        f"    - {{name: gone, url: '{list_server}/gone.list', project: p}}\n"
    )
    path = _config(tmp_path, demo_cloud.auth_url, "fedcloudpass", lists)
    assert cli.main(["--config", str(path), "config", "check", "--connect"]) == 1
    out = capsys.readouterr().out
    assert "ok    openstack: logged in to Keystone as fedcloud in project fedcloud-ops" in out
    assert "ok    images.lists[0] (good): fetched 17 bytes" in out
    assert "FAIL  images.lists[1] (gone): HTTP 404" in out
    assert "2 of 3 connection check(s) passed" in out


@pytest.mark.e2e
def test_connect_names_the_password_file_when_keystone_refuses(demo_cloud, tmp_path, capsys):
    path = _config(tmp_path, demo_cloud.auth_url, "not-the-password", "")
    assert cli.main(["--config", str(path), "config", "check", "--connect"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  openstack: Keystone refused the credentials (401)" in out
    assert "openstack.password_file" in out and "not-the-password" not in out


def test_connect_says_when_keystone_cannot_be_reached(tmp_path, capsys):
    port = free_port(range(46200, 46300))  # nothing listens there
    path = _config(tmp_path, f"http://127.0.0.1:{port}/v3", "x", "")
    assert cli.main(["--config", str(path), "config", "check", "--connect"]) == 1
    assert "FAIL  openstack: cannot reach the cloud" in capsys.readouterr().out
