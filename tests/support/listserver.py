"""An HTTPS server for signed image lists and images, with fault injection.

Shared by image replication's tests and the fault corpus (tests/faults).
``Signing`` makes a CA (the tests' ``TestCA``), an endorser and a server
certificate, and publishes lists signed with ``openssl smime``.
``ListServer`` serves lists and images, honours ``Range``/``If-Range``,
checks the AppDB-style token, and can be told to misbehave (cut a transfer
short, hang, answer 5xx). ``GlanceFaults`` is a pass-through proxy in front
of the real Glance that can break the next upload.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import http.server
import json
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import requests

from fedcloud_cloudkeeper.config import ListSource
from tests.support.testca import DEFAULT_DN, TestCA

ENDORSER_DN = "/DC=org/DC=example/O=Endorsers/CN=appdb.example.org"
DATE = "%Y-%m-%dT%H:%M:%SZ"


def sign(content: bytes, cert: Path, key: Path, opaque: bool = False) -> bytes:
    """``content`` signed with ``openssl smime``: clear-signed, or opaque (-nodetach)."""
    args = ["openssl", "smime", "-sign", "-signer", str(cert), "-inkey", str(key)]
    if opaque:
        args.append("-nodetach")
    return subprocess.run(args, input=content, check=True, capture_output=True).stdout


def image_entry(identifier: str, data: bytes, base_url: str, **overrides: object) -> dict:
    entry = {
        "dc:identifier": identifier,
        "dc:title": f"Image {identifier}",
        "dc:description": f"Test image {identifier}",
        "ad:mpuri": f"https://appdb.example.org/store/vo/image/{identifier}:1/",
        "ad:base_mpuri": f"https://appdb.example.org/store/vm/image/{identifier}:1/",
        "ad:group": "General group",
        "hv:hypervisor": "KVM",
        "hv:format": "qcow2",
        "hv:ram_minimum": "512",
        "hv:core_minimum": "1",
        "hv:size": str(len(data)),
        "hv:uri": f"{base_url}/images/{identifier}",
        "hv:version": "1.0",
        "sl:arch": "x86_64",
        "sl:checksum:sha512": hashlib.sha512(data).hexdigest(),
        "sl:comments": "",
        "sl:os": "Linux",
        "sl:osname": "Ubuntu",
        "sl:osversion": "24.04",
    }
    entry.update(overrides)
    return {"hv:image": entry}


def image_list(images: list[dict], vo: str | None = "vo.demo.example", **overrides: object) -> dict:
    now = datetime.datetime.now(datetime.UTC)
    body = {
        "dc:date:created": (now - datetime.timedelta(minutes=5)).strftime(DATE),
        "dc:date:expires": (now + datetime.timedelta(days=7)).strftime(DATE),
        "dc:description": "Test VO image list",
        "dc:identifier": "5b7c3f4e-0000-4000-8000-000000000001",
        "dc:source": "https://appdb.example.org/",
        "dc:title": "Test list",
        "hv:endorser": {
            "hv:x509": {
                "dc:creator": "Applications Database",
                "hv:ca": DEFAULT_DN,
                "hv:dn": ENDORSER_DN,
                "hv:email": "appdb@example.org",
            }
        },
        "hv:images": images,
        "hv:uri": "https://appdb.example.org/store/vo/image.list",
        "hv:version": now.strftime("%Y%m%d%H%M%S"),
    }
    if vo:
        body["ad:vo"] = vo
    body.update(overrides)
    return {"hv:imagelist": body}


class ListServer:
    """HTTPS server for lists and images, with fault injection."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.files: dict[str, bytes] = {}
        self.tokens: dict[str, str] = {}  # path -> required basic-auth user
        self.redirects: dict[str, str] = {}
        self.cut_after: dict[str, int] = {}  # path -> bytes sent before dropping, once
        self.fail_next: dict[str, int] = {}  # path -> status to answer, once
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.if_ranges: list[str | None] = []  # the If-Range header of each request
        self.stall_after: dict[str, int] = {}  # path -> bytes sent before hanging, once
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Range")))
                if self.path in server.redirects:
                    self._reply(302, b"", {"Location": server.redirects[self.path]})
                    return
                if self.path in server.fail_next:
                    self._reply(server.fail_next.pop(self.path), b"failing on purpose")
                    return
                token = server.tokens.get(self.path)
                if token and not self._authorised(token):
                    self._reply(401, b"token required", {"WWW-Authenticate": "Basic"})
                    return
                data = server.files.get(self.path)
                if data is None:
                    self._reply(404, b"no such file")
                    return
                start, status = 0, 200
                wanted = self.headers.get("Range")
                etag = f'"{hashlib.sha1(data).hexdigest()[:16]}"'
                server.if_ranges.append(self.headers.get("If-Range"))
                unchanged = self.headers.get("If-Range") in (None, etag)
                if wanted and wanted.startswith("bytes=") and wanted.endswith("-") and unchanged:
                    start, status = int(wanted[6:-1]), 206
                body = data[start:]
                headers = {"Accept-Ranges": "bytes", "ETag": etag}
                if status == 206:
                    headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                cut = server.cut_after.pop(self.path, None)
                stall = server.stall_after.pop(self.path, None)
                if stall is not None:  # send some, then hang (until the client is killed)
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[:stall])
                    self.wfile.flush()
                    time.sleep(60)
                    self.close_connection = True
                    return
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body if cut is None else body[:cut])
                if cut is not None:
                    self.close_connection = True
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)

            def _authorised(self, token: str) -> bool:
                header = self.headers.get("Authorization", "")
                if not header.startswith("Basic "):
                    return False
                user = base64.b64decode(header[6:]).decode().split(":", 1)[0]
                return user == token

            def _reply(self, status: int, body: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = _bind(Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://localhost:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _bind(handler: type) -> http.server.ThreadingHTTPServer:
    """A server on a free port of the image tests' range (40000-40999)."""
    for port in range(40000, 41000):
        try:
            return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        except OSError:
            continue
    raise RuntimeError("no free port in 40000-40999")


class Signing:
    """Everything a test needs to publish trusted (and untrusted) lists."""

    def __init__(self, root: Path) -> None:
        self.ca = TestCA(root / "ca")
        self.endorser = self.ca.issue("endorser", ENDORSER_DN)
        self.ca_dir = self.ca.publish(root / "certificates")
        self.server_cert = self.ca.issue(
            "server", "/DC=org/DC=example/CN=localhost", san="DNS:localhost,IP:127.0.0.1"
        )
        self.server = ListServer(*self.server_cert)

    def source(
        self, name: str = "demo", path: str = "/lists/demo", **overrides: object
    ) -> ListSource:
        values: dict = {
            "name": name,
            "url": f"{self.server.url}{path}",
            "endorser_dn": ENDORSER_DN,
            "endorser_ca": self.ca.dn,
        }
        values.update(overrides)
        return ListSource(**values)

    def publish(self, path: str, document: dict, opaque: bool = False, signer=None) -> bytes:
        cert, key = signer or self.endorser
        message = sign(json.dumps(document, indent=1).encode(), cert, key, opaque=opaque)
        self.server.files[path] = message
        return message


class GlanceFaults:
    """A pass-through proxy in front of the real Glance that can break uploads.

    Everything is forwarded unchanged, except the next image-data PUT when a
    fault is armed: ``fail_upload`` answers that status after reading part
    of the body (a 5xx mid-upload); ``stall_upload`` reads part of the body
    and then hangs, so the uploader can be killed mid-transfer.
    """

    def __init__(self, glance_url: str) -> None:
        self.glance_url = glance_url.rstrip("/")
        self.fail_upload: int | None = None
        self.stall_upload = False
        self.upload_started = threading.Event()
        self.seen: list[tuple[str, str, dict]] = []
        self.release = threading.Event()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                proxy.seen.append((self.command, self.path, dict(self.headers)))
                is_upload = self.command == "PUT" and self.path.endswith("/file")
                if is_upload and (proxy.fail_upload or proxy.stall_upload):
                    self._break_upload()
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if self.headers.get("Transfer-Encoding") == "chunked":
                    body = self._read_chunked()
                dropped = ("host", "transfer-encoding", "content-length")
                headers = {k: v for k, v in self.headers.items() if k.lower() not in dropped}
                reply = requests.request(
                    self.command,
                    proxy.glance_url + self.path,
                    data=body,
                    headers=headers,
                    allow_redirects=False,
                    timeout=120,
                )
                content = reply.content
                self.send_response(reply.status_code)
                for key, value in reply.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection",
                                           "content-encoding"):  # fmt: skip
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def _read_chunked(self) -> bytes:
                data = bytearray()
                while True:
                    size = int(self.rfile.readline().strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        return bytes(data)
                    data += self.rfile.read(size)
                    self.rfile.readline()

            def _break_upload(self) -> None:
                self.rfile.read(min(int(self.headers.get("Content-Length") or 0), 64 * 1024))
                proxy.upload_started.set()
                if proxy.stall_upload:
                    proxy.release.wait(120)
                    self.close_connection = True
                    return
                status, proxy.fail_upload = proxy.fail_upload, None
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _forward  # noqa: N815

        self.httpd = _bind(Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
