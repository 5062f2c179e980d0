"""STAND-IN for the EGI accounting endpoint (ARGO AMS + the APEL receiver).

Not for production. It speaks the two AMS calls the sender makes, over
HTTPS, with the real wire format:

- ``GET /v1/service-types/ams/hosts/<host>:authx509`` on the client
  certificate port: a verified client certificate whose DN is allow-listed
  gets the token;
- a publish request over ``--max-bytes`` (AMS's 1 MB by default) is
  refused with 413 "Message size is too large", as AMS does;
- ``POST /v1/projects/<project>/topics/<topic>:publish`` with the token
  (``x-api-key`` header or ``?key=``): every message is base64-decoded,
  decrypted when it is an enveloped S/MIME message and a server key is
  given, and its S/MIME signature verified against the CA and the DN
  allow-list, as ssmreceive does. The publish is accepted (200 with
  ``messageIds``) only when every message passes; accepted messages are
  stored one JSON file each in ``--store`` (with the ``<project>/<topic>``
  they were published to), rejections in ``--store/rejected``.

Signature checks are done in-process (CMS signed attributes, message
digest, signer chain to the CA) so the stand-in never is the bottleneck of
a benchmark; the tests cross-check the same messages with ``openssl smime
-verify``.

Run: python ams_standin.py --port P --authx509-port Q --cert C --key K
     --ca CA --allowed-dns FILE --store DIR [--decrypt-key K2 --decrypt-cert C2]
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime
import hashlib
import itertools
import json
import os
import re
import secrets
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7

_MESSAGE_DIGEST = bytes.fromhex("06092a864886f70d010904")  # OID 1.2.840.113549.1.9.4
_DIGESTS = {
    bytes.fromhex("608648016503040201"): (hashlib.sha256, hashes.SHA256()),
    bytes.fromhex("608648016503040202"): (hashlib.sha384, hashes.SHA384()),
    bytes.fromhex("608648016503040203"): (hashlib.sha512, hashes.SHA512()),
    bytes.fromhex("2b0e03021a"): (hashlib.sha1, hashes.SHA1()),
}


class RejectedError(Exception):
    pass


# --- minimal DER reading: just enough of CMS SignedData -----------------------


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the DER element at ``pos``."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    return tag, pos, pos + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(tag, element start, value start, value end) of each child in [start, end)."""
    out = []
    pos = start
    while pos < end:
        tag, vstart, vend = _tlv(data, pos)
        out.append((tag, pos, vstart, vend))
        pos = vend
    return out


def _signer_info(der: bytes) -> tuple[bytes, bytes, bytes]:
    """(digest algorithm OID, signed attributes DER as a SET, signature) of the signer."""
    _, s, e = _tlv(der, 0)  # ContentInfo
    content = _children(der, s, e)
    _, _, s, e = content[1]  # [0] EXPLICIT
    _, s, e = _tlv(der, s)  # SignedData SEQUENCE
    signed_data = _children(der, s, e)
    _, _, s, e = signed_data[-1]  # signerInfos SET
    _, _, s, e = _children(der, s, e)[0]  # first SignerInfo
    info = _children(der, s, e)
    _, _, s, e = info[2]  # digestAlgorithm
    _, os_, oe = _tlv(der, s)
    digest_oid = der[os_:oe]
    attrs = next((c for c in info if c[0] == 0xA0), None)
    if attrs is None:
        raise RejectedError("signature without signed attributes")
    _, astart, _, aend = attrs
    signed_attrs = b"\x31" + der[astart + 1 : aend]
    _, _, s, e = info[info.index(attrs) + 2]  # signature OCTET STRING
    return digest_oid, signed_attrs, der[s:e]


def _message_digest(signed_attrs: bytes) -> bytes:
    _, s, e = _tlv(signed_attrs, 0)
    for _, _start, vs, ve in _children(signed_attrs, s, e):
        if signed_attrs[vs : vs + len(_MESSAGE_DIGEST)] == _MESSAGE_DIGEST:
            _, _, ss, _se = _children(signed_attrs, vs, ve)[1]  # SET of values
            _, os_, oe = _tlv(signed_attrs, ss)
            return signed_attrs[os_:oe]
    raise RejectedError("no message digest attribute")


# --- S/MIME ---------------------------------------------------------------------


def openssl_dn(name: x509.Name) -> str:
    """The DN as ``/DC=org/O=X/CN=y``: the form APEL's allow-lists use."""
    return "".join(f"/{attr.rfc4514_string()}" for attr in name)


def _split_multipart(message: bytes) -> tuple[bytes, bytes]:
    """(signed content as signed, signature DER) of a multipart/signed message."""
    head, _, rest = message.replace(b"\r\n", b"\n").partition(b"\n\n")
    found = re.search(rb'boundary="?([^";\s]+)"?', head)
    if b"multipart/signed" not in head or found is None:
        raise RejectedError("not a multipart/signed S/MIME message")
    boundary = b"--" + found[1]
    parts = rest.split(boundary)
    if len(parts) < 3:
        raise RejectedError("multipart/signed without two parts")
    content = parts[1].removeprefix(b"\n").removesuffix(b"\n")
    _, _, sig_b64 = parts[2].partition(b"\n\n")
    try:
        signature = base64.b64decode(sig_b64, validate=False)
    except binascii.Error:
        raise RejectedError("signature is not base64") from None
    return content.replace(b"\n", b"\r\n"), signature


def verify(message: bytes, ca: x509.Certificate, allowed: set[str]) -> tuple[str, bytes]:
    """(signer DN, body) of a valid signed message, else RejectedError with why."""
    content, der = _split_multipart(message)
    try:
        certs = pkcs7.load_der_pkcs7_certificates(der)
        digest_oid, signed_attrs, signature = _signer_info(der)
    except (ValueError, IndexError) as error:
        raise RejectedError(f"unreadable signature ({error})") from None
    if digest_oid not in _DIGESTS:
        raise RejectedError("unsupported digest")
    hasher, algorithm = _DIGESTS[digest_oid]
    if hasher(content).digest() != _message_digest(signed_attrs):
        raise RejectedError("content does not match its signature (altered?)")
    now = datetime.datetime.now(datetime.UTC)
    for cert in certs:
        try:
            key = cert.public_key()
            if isinstance(key, rsa.RSAPublicKey):
                key.verify(signature, signed_attrs, padding.PKCS1v15(), algorithm)
            elif isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(signature, signed_attrs, ec.ECDSA(algorithm))
            else:
                continue
        except InvalidSignature:
            continue
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            raise RejectedError(f"signer {openssl_dn(cert.subject)} not issued by the CA") from None
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise RejectedError(f"signer {openssl_dn(cert.subject)} certificate not valid now")
        dn = openssl_dn(cert.subject)
        if dn not in allowed:
            raise RejectedError(f"signer {dn} not in the DN allow-list")
        body = content.replace(b"\r\n", b"\n")
        if body.startswith(b"Content-Type: text/plain"):
            body = body.split(b"\n\n", 1)[1]
        return dn, body
    raise RejectedError("signature does not verify with the included certificate")


# --- HTTP -------------------------------------------------------------------------


class Standin:
    def __init__(self, args: argparse.Namespace) -> None:
        self.ca = x509.load_pem_x509_certificate(Path(args.ca).read_bytes())
        self.allowed_path = Path(args.allowed_dns)
        self.store = Path(args.store)
        (self.store / "rejected").mkdir(parents=True, exist_ok=True)
        self.token = args.token or secrets.token_hex(16)
        self.max_bytes: int = args.max_bytes
        self.counter = itertools.count(len(list(self.store.glob("*.json"))))
        self.lock = threading.Lock()
        self.decrypt: tuple[x509.Certificate, object] | None = None
        if args.decrypt_key:
            self.decrypt = (
                x509.load_pem_x509_certificate(Path(args.decrypt_cert).read_bytes()),
                serialization.load_pem_private_key(
                    Path(args.decrypt_key).read_bytes(), password=None
                ),
            )

    def allowed(self) -> set[str]:
        """Re-read each time, like ssmreceive's periodic reload."""
        return {
            line.strip()
            for line in self.allowed_path.read_text().splitlines()
            if line.strip() and not line.startswith("#")
        }

    def accept(self, data: bytes) -> tuple[str, bytes]:
        if b"application/pkcs7-mime" in data[:500] or b"application/x-pkcs7-mime" in data[:500]:
            if self.decrypt is None:
                raise RejectedError("encrypted message but no server key")
            cert, key = self.decrypt
            try:
                data = pkcs7.pkcs7_decrypt_smime(data, cert, key, [])  # type: ignore[arg-type]
            except ValueError as error:
                raise RejectedError(f"cannot decrypt ({error})") from None
        return verify(data, self.ca, self.allowed())

    def keep(
        self, topic: str, empaid: str, signer: str, body: bytes, rejected: str | None = None
    ) -> str:
        with self.lock:
            number = next(self.counter)
        record = {
            "topic": topic,
            "empaid": empaid,
            "signer": signer,
            "body": body.decode("utf-8", "replace"),
        }
        where = self.store
        if rejected is not None:
            record["error"] = rejected
            where = self.store / "rejected"
        path = where / f"{number:08d}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, path)
        return str(number)


def _handler(standin: Standin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: object) -> None:
            if os.environ.get("AMS_STANDIN_VERBOSE"):
                super().log_message(fmt, *args)

        def _reply(self, status: int, body: dict[str, object]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if not self.path.endswith(":authx509"):
                return self._reply(404, {"error": {"message": "not found"}})
            peer = self.connection.getpeercert(binary_form=True)  # type: ignore[attr-defined]
            if not peer:
                return self._reply(401, {"error": {"message": "no client certificate"}})
            dn = openssl_dn(x509.load_der_x509_certificate(peer).subject)
            if dn not in standin.allowed():
                return self._reply(403, {"error": {"message": f"{dn} not allowed"}})
            self._reply(200, {"token": standin.token})

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length", 0))
            raw = self.rfile.read(length)
            if length > standin.max_bytes:
                # AMS's answer to a publish over its limit (apel/ssm#155)
                return self._reply(
                    413,
                    {
                        "error": {
                            "code": 413,
                            "message": "Message size is too large",
                            "status": "INVALID_ARGUMENT",
                        }
                    },
                )
            topic = re.fullmatch(r"/v1/projects/([^/]+)/topics/([^/]+):publish", url.path)
            if topic is None:
                return self._reply(404, {"error": {"message": "not found"}})
            where = "/".join(topic.groups())
            key = self.headers.get("x-api-key") or parse_qs(url.query).get("key", [""])[0]
            if key != standin.token:
                return self._reply(401, {"error": {"code": 401, "message": "Unauthorized"}})
            try:
                messages = json.loads(raw)["messages"]
            except (ValueError, KeyError):
                return self._reply(400, {"error": {"message": "bad publish body"}})
            verified = []
            for message in messages:
                empaid = message.get("attributes", {}).get("empaid", "")
                data = base64.b64decode(message.get("data", ""))
                try:
                    verified.append((empaid, *standin.accept(data)))
                except RejectedError as why:
                    standin.keep(where, empaid, "", data, rejected=str(why))
                    return self._reply(422, {"error": {"message": f"{empaid}: {why}"}})
            ids = [standin.keep(where, empaid, dn, body) for empaid, dn, body in verified]
            self._reply(200, {"messageIds": ids})

    return Handler


def _serve(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="AMS + APEL receiver STAND-IN")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--authx509-port", type=int, required=True)
    parser.add_argument("--cert", required=True, help="this endpoint's TLS certificate")
    parser.add_argument("--key", required=True)
    parser.add_argument("--ca", required=True, help="CA of client and signer certificates")
    parser.add_argument("--allowed-dns", required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--token")
    parser.add_argument(
        "--max-bytes",
        type=int,
        default=1_000_000,
        help="refuse a publish request larger than this with 413, as AMS does (1 MB)",
    )
    parser.add_argument("--decrypt-cert")
    parser.add_argument("--decrypt-key")
    args = parser.parse_args(argv)
    standin = Standin(args)
    handler = _handler(standin)

    def tls(require_client: bool) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        if require_client:
            ctx.load_verify_locations(args.ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    servers = []
    for port, require_client in ((args.port, False), (args.authx509_port, True)):
        server = ThreadingHTTPServer((args.host, port), handler)
        server.daemon_threads = True
        server.socket = tls(require_client).wrap_socket(server.socket, server_side=True)
        servers.append(server)
    threads = [_serve(s) for s in servers]
    print(f"ams-standin listening on {args.host}:{args.port} (+{args.authx509_port})", flush=True)
    try:
        for thread in threads:
            thread.join()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
