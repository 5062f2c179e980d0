#!/usr/bin/env python3
"""STAND-IN for AppDB / the VO image list and image servers. Not for production.

The demo cannot reach vmcaster.appdb.egi.eu, so this serves a directory made
by ``demo/bin/demo-data`` (the signed ``fedcloud-demo.list`` and its images)
over HTTPS, and behaves like the real servers in what cloudkeeper relies on:

- ``Content-Length`` on every answer, so a short transfer is noticed;
- ``Range: bytes=N-`` (what cloudkeeper sends to resume a download) and the
  other single-range forms, answered ``206`` with ``Content-Range``; a range
  past the end is ``416``, several ranges get the whole file (RFC 9110 lets
  a server ignore Range);
- ``--token T``: image lists (``*.list``) need AppDB's basic-auth form, the
  token as the user (cloudkeeper sends ``token_file`` that way); images stay
  public, as AppDB's image endpoints are, and cloudkeeper sends no token for
  them;
- one log line per request on stdout; ``GET /healthz`` answers ``ok`` for a
  container healthcheck, without the token.

TLS is negotiated in each connection's own thread, so a client that never
completes a handshake holds up only itself. Standard library only: it runs
as ``python3 imagelist_server.py`` in any Python 3.11 container.

Run: python3 imagelist_server.py --root DIR --port P --cert C --key K
     [--host 0.0.0.0] [--token T]
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import hmac
import re
import signal
import socket
import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar, NoReturn
from urllib.parse import unquote, urlsplit

CHUNK = 1024 * 1024
HANDSHAKE_TIMEOUT_S = 30
CONTENT_TYPES = {".list": "text/plain; charset=utf-8", ".json": "application/json"}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def log(line: str) -> None:
    print(f"imagelist-standin {line}", flush=True)


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """(first, last) byte to send; None for the whole file; "unsatisfiable" for 416."""
    if not header:
        return None
    found = _RANGE.match(header.strip().replace(" ", ""))
    if found is None:  # several ranges, or another unit: send it all
        return None
    first, last = found.groups()
    if not first and not last:
        return None
    if not first:  # bytes=-N: the last N bytes
        count = int(last)
        if count == 0:
            return "unsatisfiable"
        return max(size - count, 0), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return "unsatisfiable"
    return start, end


class Handler(BaseHTTPRequestHandler):
    """GET and HEAD of files under ``root``; no listings, nothing outside it."""

    root: ClassVar[Path]
    token: ClassVar[str | None] = None
    protocol_version = "HTTP/1.1"
    server_version = "imagelist-standin"
    timeout = 120  # an idle keep-alive connection is closed after this

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, send_body: bool) -> None:
        began = time.monotonic()
        status, sent = self._serve(send_body)
        log(
            f'{self.client_address[0]} "{self.command} {self.path}" {status} {sent}B '
            f"range={self.headers.get('Range') or '-'} {time.monotonic() - began:.3f}s"
        )

    def _serve(self, send_body: bool) -> tuple[int, int]:
        """Send the answer; (status, body bytes sent) for the log line."""
        path = unquote(urlsplit(self.path).path)
        if path == "/healthz":
            return self._reply(200, b"ok\n", send_body)
        target = self._file(path)
        if target is None:
            return self._reply(404, b"no such file\n", send_body)
        if self.token and target.suffix == ".list" and not self._authorised():
            return self._reply(
                401, b"token required\n", send_body, {"WWW-Authenticate": 'Basic realm="AppDB"'}
            )
        size = target.stat().st_size
        wanted = parse_range(self.headers.get("Range"), size)
        if wanted == "unsatisfiable":
            return self._reply(
                416, b"range not satisfiable\n", send_body, {"Content-Range": f"bytes */{size}"}
            )
        headers = {
            "Accept-Ranges": "bytes",
            "Content-Type": CONTENT_TYPES.get(target.suffix, "application/octet-stream"),
            "Last-Modified": self.date_time_string(int(target.stat().st_mtime)),
        }
        status, first, last = 200, 0, size - 1
        if isinstance(wanted, tuple):
            status, (first, last) = 206, wanted
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        length = last - first + 1
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if not send_body:
            return status, 0
        return status, self._copy(target, first, length)

    def _file(self, path: str) -> Path | None:
        """The regular file ``path`` names under the root, or None."""
        root = self.root.resolve()
        try:
            target = (root / path.lstrip("/")).resolve()
        except (OSError, ValueError):
            return None
        if not target.is_relative_to(root) or not target.is_file():
            return None
        return target

    def _authorised(self) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user = base64.b64decode(header[6:], validate=True).decode().split(":", 1)[0]
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user.encode(), (self.token or "").encode())

    def _copy(self, target: Path, first: int, length: int) -> int:
        sent = 0
        try:
            with target.open("rb") as stream:
                stream.seek(first)
                while sent < length:
                    chunk = stream.read(min(CHUNK, length - sent))
                    if not chunk:  # the file shrank under us: end the connection short
                        self.close_connection = True
                        break
                    self.wfile.write(chunk)
                    sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError, TimeoutError, ssl.SSLError):
            self.close_connection = True  # the client went away; the log line says how far
        return sent

    def _reply(
        self, status: int, body: bytes, send_body: bool, headers: dict[str, str] | None = None
    ) -> tuple[int, int]:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)
        return status, len(body) if send_body else 0

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Silenced: ``_answer`` writes the one line per request, with the range."""

    def log_message(self, fmt: str, *args: object) -> None:
        log(f"{self.address_string()} {fmt % args}")


class TLSServer(ThreadingHTTPServer):
    """An HTTPS server doing each TLS handshake in the connection's thread."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], handler: type[Handler], context: ssl.SSLContext
    ) -> None:
        super().__init__(address, handler)
        self.context = context

    def finish_request(self, request: socket.socket, client_address: tuple[str, int]) -> None:  # type: ignore[override]
        request.settimeout(HANDSHAKE_TIMEOUT_S)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as error:
            log(f"{client_address[0]} TLS handshake failed: {error}")
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            with contextlib.suppress(OSError):
                tls.shutdown(socket.SHUT_WR)
            tls.close()


def serve(root: Path, host: str, port: int, cert: Path, key: Path, token: str | None) -> TLSServer:
    """The server, bound and ready; call ``serve_forever``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    handler = type("StandinHandler", (Handler,), {"root": Path(root), "token": token})
    return TLSServer((host, port), handler, context)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--root", type=Path, required=True, help="directory to serve")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", type=Path, required=True, help="TLS certificate (PEM)")
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--token", help="AppDB token: the basic-auth user *.list files need")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        parser.error(f"--root {args.root} is not a directory")
    server = serve(args.root, args.host, args.port, args.cert, args.key, args.token)

    def stop(signum: int, frame: object) -> NoReturn:
        raise SystemExit(0)  # leaves serve_forever; docker stop sends SIGTERM

    signal.signal(signal.SIGTERM, stop)
    protected = " (lists need the token)" if args.token else ""
    log(f"listening on https://{args.host}:{args.port} serving {args.root}{protected}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
