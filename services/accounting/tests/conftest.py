"""Fixtures for the accounting tests: a throw-away PKI, the spool, the stand-in.

The PKI is made with ``cryptography`` per test session: a CA, the host
certificate the sender signs with, the stand-in's TLS certificate, and the
bad cases (expired, mismatched key, foreign CA).
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
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from fedcloud_accounting.config import SendConfig

ROOT = Path(__file__).resolve().parents[3]
STANDIN = ROOT / "demo" / "accounting-endpoint" / "ams_standin.py"
PORT_BASE = 42000  # this package's own range: 42000-42999
HOST_DN = "/DC=org/DC=test/O=Appliance/CN=accounting.appliance.test"


def _name(*parts: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in parts])


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write(path: Path, cert: x509.Certificate, key: rsa.RSAPrivateKey | None = None) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        keyfile = path.with_suffix(".key")
        keyfile.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        keyfile.chmod(0o600)
    return path


def _issue(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: x509.Name,
    issuer_key: rsa.RSAPrivateKey,
    *,
    ca: bool = False,
    days: float = 30,
    start_days: float = -1,
    san: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=start_days))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=not ca,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


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
    d = tmp_path_factory.mktemp("pki")
    ca_key = _key()
    ca_name = _name(
        (NameOID.DOMAIN_COMPONENT, "org"),
        (NameOID.DOMAIN_COMPONENT, "test"),
        (NameOID.ORGANIZATION_NAME, "Appliance"),
        (NameOID.COMMON_NAME, "Test CA"),
    )
    ca = _issue(ca_name, ca_key, ca_name, ca_key, ca=True, days=365)
    host_name = _name(
        (NameOID.DOMAIN_COMPONENT, "org"),
        (NameOID.DOMAIN_COMPONENT, "test"),
        (NameOID.ORGANIZATION_NAME, "Appliance"),
        (NameOID.COMMON_NAME, "accounting.appliance.test"),
    )
    host_key = _key()
    server_key = _key()
    server = _issue(
        _name((NameOID.COMMON_NAME, "localhost")),
        server_key,
        ca_name,
        ca_key,
        san=[x509.DNSName("localhost")],
    )
    expired_key = _key()
    expired = _issue(host_name, expired_key, ca_name, ca_key, days=-1, start_days=-30)
    foreign_ca_key = _key()
    foreign_ca_name = _name((NameOID.COMMON_NAME, "Foreign CA"))
    foreign_key = _key()
    foreign = _issue(host_name, foreign_key, foreign_ca_name, foreign_ca_key)
    other_key = _key()
    (d / "other.pem").write_text("")
    _write(d / "other.pem", _issue(host_name, other_key, ca_name, ca_key), other_key)
    allowed = d / "allowed-dns"
    allowed.write_text(f"# DNs allowed to publish\n{HOST_DN}\n")
    return Pki(
        dir=d,
        ca=_write(d / "ca.pem", ca),
        host_cert=_write(
            d / "hostcert.pem", _issue(host_name, host_key, ca_name, ca_key), host_key
        ),
        host_key=d / "hostcert.key",
        server_cert=_write(d / "server.pem", server, server_key),
        server_key=d / "server.key",
        expired_cert=_write(d / "expired.pem", expired, expired_key),
        expired_key=d / "expired.key",
        other_key=d / "other.key",
        foreign_cert=_write(d / "foreign.pem", foreign, foreign_key),
        foreign_key=d / "foreign.key",
        allowed_dns=allowed,
    )


def free_port(start: int) -> int:
    """A free port in this package's range, from ``start`` upwards."""
    for port in range(start, PORT_BASE + 1000):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 42000-42999")


@dataclasses.dataclass
class Endpoint:
    """The AMS stand-in as a process: start, stop (to play "down"), read what it stored."""

    pki: Pki
    store: Path
    port: int
    authx509_port: int
    decrypt: bool = False
    token: str | None = None
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

    def config(self, spool: Path, **overrides: object) -> SendConfig:
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
        return SendConfig.model_validate(values)


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
