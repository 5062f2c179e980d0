"""S/MIME signing and encryption of APEL messages, without an openssl process.

The output is what ``openssl smime -sign -text`` (and ``-encrypt -aes128``)
produces: a detached multipart/signed message whose first part carries a
``Content-Type: text/plain`` header, so SSM receivers and ``openssl smime
-verify`` accept it. Doing it in-process is what makes the sender fast: SSM
starts one ``openssl`` process per message.
"""

from __future__ import annotations

import base64
import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7

from fedcloud_accounting.errors import CertificateError

_TEXT_HEADER = b"Content-Type: text/plain\r\n\r\n"
# Binary: the part is canonicalised above; detached: the content travels
# in the first MIME part, the signature in the second.
_SIGN_OPTIONS = [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary]


@dataclass(frozen=True)
class Signer:
    cert: x509.Certificate
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    def sign(self, body: bytes) -> bytes:
        """``body`` as ``openssl smime -sign -text`` would write it.

        The MIME framing is written here rather than by cryptography's SMIME
        encoder, which goes through the ``email`` package and costs twice the
        signature itself; the bytes signed are the canonical text part
        (``Content-Type: text/plain``, CRLF line ends), as openssl signs them.
        """
        part = _TEXT_HEADER + body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        signature = (
            pkcs7.PKCS7SignatureBuilder()
            .set_data(part)
            .add_signer(self.cert, self.key, hashes.SHA256())
            .sign(serialization.Encoding.DER, _SIGN_OPTIONS)
        )
        boundary = os.urandom(16).hex().upper().encode()
        b64 = base64.encodebytes(signature)  # 76-column lines, as MIME wants
        return b"".join(
            (
                b"MIME-Version: 1.0\n"
                b'Content-Type: multipart/signed; protocol="application/x-pkcs7-signature"; '
                b'micalg="sha-256"; boundary="----',
                boundary,
                b'"\n\nThis is an S/MIME signed message\n\n------',
                boundary,
                b"\n",
                part.replace(b"\r\n", b"\n"),
                b"\n------",
                boundary,
                b'\nContent-Type: application/x-pkcs7-signature; name="smime.p7s"\n'
                b"Content-Transfer-Encoding: base64\n"
                b'Content-Disposition: attachment; filename="smime.p7s"\n\n',
                b64,
                b"\n------",
                boundary,
                b"--\n\n",
            )
        )


def encrypt(signed: bytes, server_cert: x509.Certificate) -> bytes:
    """Envelope the signed message to the server (AES-128-CBC, as SSM)."""
    return (
        pkcs7.PKCS7EnvelopeBuilder()
        .set_data(signed)
        .add_recipient(server_cert)
        .encrypt(serialization.Encoding.SMIME, [])
    )


def load_signer(cert_path: Path, key_path: Path, min_validity: datetime.timedelta) -> Signer:
    """Load the host cert and key, refusing a pair that would be rejected later.

    Checked before the spool is touched: a mismatched pair or a certificate
    expiring within ``min_validity`` fails the run with the fix to apply,
    and every message stays where it is.
    """

    def fail(problem: str, fix: str) -> CertificateError:
        return CertificateError(cert=cert_path, key=key_path, problem=problem, fix=fix)

    try:
        cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    except (OSError, ValueError) as error:
        raise fail(f"certificate unreadable ({error})", "install the host certificate") from None
    try:
        key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise fail(f"key unreadable ({error})", "install the unencrypted host key") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise fail("key type not supported", "use an RSA or EC host key")
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    pem = serialization.Encoding.PEM
    if key.public_key().public_bytes(pem, spki) != cert.public_key().public_bytes(pem, spki):
        raise fail("the key does not belong to the certificate", "install the matching pair")
    now = datetime.datetime.now(datetime.UTC)
    if cert.not_valid_before_utc > now:
        raise fail(f"not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M}Z", "check clock")
    if cert.not_valid_after_utc - now < min_validity:
        state = "expired" if cert.not_valid_after_utc <= now else "expires"
        raise fail(
            f"{state} {cert.not_valid_after_utc:%Y-%m-%d %H:%M}Z", "renew the host certificate"
        )
    return Signer(cert, key)


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(Path(path).read_bytes())
