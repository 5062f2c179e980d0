"""S/MIME verification of image lists with the ``openssl`` command.

``openssl cms -verify -inform SMIME`` reads both forms endorsers publish:
clear-signed ``multipart/signed`` and opaque (``-nodetach``) PKCS#7. We keep
only what it writes to ``-out`` -- the bytes the signature covers -- so text
outside the signed part can never reach the parser. The trust anchor is a
directory laid out like ``/etc/grid-security/certificates`` (hashed links,
``<hash>.r0`` CRLs); when a CRL for the signer's issuer is there, revocation
is checked, and a revoked or CRL-less-but-required signer fails.
"""

from __future__ import annotations

import dataclasses
import subprocess
import tempfile
from pathlib import Path

from fedcloud_cloudkeeper.errors import ImageListUntrustedError

OPENSSL = "openssl"
TIMEOUT_S = 60
SIGNER_OUT = ("-signer", "signer.pem", "-out", "/dev/null")
COMPAT = ("-nameopt", "compat")


@dataclasses.dataclass(frozen=True)
class Verified:
    content: bytes
    signer_dn: str
    issuer_dn: str


def verify(message: bytes, ca_path: Path, source: str) -> Verified:
    """The signed content of ``message`` and who signed it, or ImageListUntrustedError."""
    with tempfile.TemporaryDirectory(prefix="ck-smime-") as tmp:
        work = Path(tmp)
        (work / "message").write_bytes(message)
        # First pass only extracts the signer certificate, so we can tell
        # whether a CRL for its issuer is present; trust is the second pass.
        _openssl(
            ["cms", "-verify", "-inform", "SMIME", "-noverify", "-in", "message", *SIGNER_OUT],
            work,
            source,
        )
        subject, issuer, issuer_hash = _names(work / "signer.pem", work, source)
        check_crl = any(Path(ca_path).glob(f"{issuer_hash}.r*"))
        _openssl(
            ["cms", "-verify", "-inform", "SMIME", "-in", "message"]
            + ["-CApath", str(ca_path), "-purpose", "any"]
            + (["-crl_check"] if check_crl else [])
            + ["-out", "content"],
            work,
            source,
        )
        return Verified((work / "content").read_bytes(), subject, issuer)


def _names(cert: Path, work: Path, source: str) -> tuple[str, str, str]:
    out = _openssl(
        ["x509", "-in", str(cert), "-noout", "-subject", "-issuer", "-issuer_hash", *COMPAT],
        work,
        source,
    )
    lines = out.decode().splitlines()
    subject = lines[0].removeprefix("subject=").strip()
    issuer = lines[1].removeprefix("issuer=").strip()
    return subject, issuer, lines[2].strip()


def _openssl(args: list[str], work: Path, source: str) -> bytes:
    try:
        done = subprocess.run(
            [OPENSSL, *args], cwd=work, capture_output=True, timeout=TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ImageListUntrustedError(
            source=source, problem=f"openssl could not run: {error}"
        ) from None
    if done.returncode != 0:
        detail = " ".join(done.stderr.decode(errors="replace").split())[:400]
        raise ImageListUntrustedError(source=source, problem=f"signature check failed: {detail}")
    return done.stdout
