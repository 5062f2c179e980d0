"""Fixtures for the accounting tests: a throw-away PKI, the spool, the stand-in.

The PKI is the tests' shared ``TestCA`` (tests/support/testca.py), made once
per session: a CA, the host certificate the sender signs with, the
stand-in's TLS certificate, and the bad cases (expired, mismatched key,
foreign CA).
"""

from __future__ import annotations

import dataclasses
import datetime
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fedcloud_common.settings.accounting import SendSettings
from tests.support import ports
from tests.support.testca import TestCA

ROOT = Path(__file__).resolve().parents[3]
STANDIN = ROOT / "demo" / "accounting-endpoint" / "ams_standin.py"
PORT_BASE = 42000  # this package's own range: 42000-42999
HOST_DN = "/DC=org/DC=test/O=Appliance/CN=accounting.appliance.test"


@dataclasses.dataclass
class Pki:
    dir: Path
    ca: Path
    host_cert: Path
    host_key: Path
    server_cert: Path
    server_key: Path
    expired_cert: Path
    expired_key: Path
    other_key: Path
    foreign_cert: Path
    foreign_key: Path
    allowed_dns: Path


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    ca = TestCA(tmp_path_factory.mktemp("pki") / "ca", dn="/DC=org/DC=test/O=Appliance/CN=Test CA")
    host = ca.issue("hostcert", HOST_DN)
    server = ca.issue("server", "/CN=localhost", san="DNS:localhost")
    now = datetime.datetime.now(datetime.UTC)
    expired = ca.issue(
        "expired",
        HOST_DN,
        not_before=now - datetime.timedelta(days=30),
        not_after=now - datetime.timedelta(days=1),
    )
    other = ca.issue("other", HOST_DN)  # its key does not match the host certificate
    foreign = TestCA(ca.root.parent / "foreign", dn="/CN=Foreign CA").issue("foreign", HOST_DN)
    allowed = ca.root / "allowed-dns"
    allowed.write_text(f"# DNs allowed to publish\n{HOST_DN}\n")
    return Pki(
        dir=ca.root,
        ca=ca.cert,
        host_cert=host.cert,
        host_key=host.key,
        server_cert=server.cert,
        server_key=server.key,
        expired_cert=expired.cert,
        expired_key=expired.key,
        other_key=other.key,
        foreign_cert=foreign.cert,
        foreign_key=foreign.key,
        allowed_dns=allowed,
    )


def free_port(start: int) -> int:
    """A free port in this package's range, from ``start`` upwards."""
    return ports.free_port(range(start, PORT_BASE + 1000))


@dataclasses.dataclass
class Endpoint:
    """The AMS stand-in as a process: start, stop (to play "down"), read what it stored."""

    pki: Pki
    store: Path
    port: int
    authx509_port: int
    decrypt: bool = False
    token: str | None = None
    max_bytes: int | None = None
    process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        command = [
            sys.executable,
            str(STANDIN),
            "--port",
            str(self.port),
            "--authx509-port",
            str(self.authx509_port),
            "--cert",
            str(self.pki.server_cert),
            "--key",
            str(self.pki.server_key),
            "--ca",
            str(self.pki.ca),
            "--allowed-dns",
            str(self.pki.allowed_dns),
            "--store",
            str(self.store),
        ]
        if self.token:
            command += ["--token", self.token]
        if self.max_bytes:
            command += ["--max-bytes", str(self.max_bytes)]
        if self.decrypt:
            command += [
                "--decrypt-cert",
                str(self.pki.server_cert),
                "--decrypt-key",
                str(self.pki.server_key),
            ]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert "listening" in line, line

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def stored(self) -> list[dict[str, str]]:
        import json

        return [json.loads(p.read_text()) for p in sorted(self.store.glob("*.json"))]

    def rejected(self) -> list[dict[str, str]]:
        import json

        return [json.loads(p.read_text()) for p in sorted((self.store / "rejected").glob("*.json"))]

    def config(self, spool: Path, **overrides: object) -> SendSettings:
        values: dict[str, object] = {
            "protocol": "ams",
            "host": "localhost",
            "port": self.port,
            "authx509_port": self.authx509_port,
            "cert": self.pki.host_cert,
            "key": self.pki.host_key,
            "ca_bundle": self.pki.ca,
            "spool_dir": spool,
            "quarantine_dir": spool.parent / "quarantine",
            "message_timeout_s": 5,
        }
        values.update(overrides)
        return SendSettings.model_validate(values)


@pytest.fixture
def endpoint(pki: Pki, tmp_path: Path) -> Endpoint:
    port = free_port(PORT_BASE + 100)
    auth_port = free_port(port + 1)
    ep = Endpoint(pki, tmp_path / "received", port, auth_port)
    ep.start()
    yield ep
    ep.stop()


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on {port}")
