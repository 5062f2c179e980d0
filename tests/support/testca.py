"""A throw-away certificate authority for the tests, driven through the openssl command.

Every suite that needs certificates (signed image lists, the BDII's GOCDB
stand-in, the accounting sender's host certificate and its AMS or STOMP
peers) makes them here, so they all trust the same kind of CA.

Why the ``openssl`` command rather than ``cryptography``: ``openssl ca`` keeps
an index, so revocation and CRLs are the real thing; ``publish`` lays the CA
out under ``openssl x509 -hash`` names, as the IGTF distribution and
fetch-crl lay out ``/etc/grid-security/certificates``; and the code under
test reads these files with OpenSSL too.
"""

from __future__ import annotations

import datetime
import subprocess
from pathlib import Path
from typing import NamedTuple

DEFAULT_DN = "/DC=org/DC=example/CN=Test CA"

# ``$dir`` is openssl's own variable, set from ``dir``. Every DN component is
# optional but CN, so each suite keeps the DNs its code is configured with.
_CONFIG = """\
[ req ]
distinguished_name = req_dn
[ req_dn ]
[ ca_ext ]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[ ca ]
default_ca = test
[ test ]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/issued
certificate = $dir/ca.pem
private_key = $dir/ca.key
serial = $dir/serial
crlnumber = $dir/crlnumber
default_md = sha256
default_crl_days = 30
policy = anything
unique_subject = no
copy_extensions = copy
x509_extensions = leaf_ext
[ leaf_ext ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ anything ]
domainComponent = optional
countryName = optional
organizationName = optional
organizationalUnitName = optional
commonName = supplied
"""


class Issued(NamedTuple):
    """A certificate and its private key (PEM files); unpacks as ``cert, key``."""

    cert: Path
    key: Path


class TestCA:
    """A CA in ``root``: ``ca.pem``, ``ca.key`` and what it issues, as ``NAME.pem``/``NAME.key``."""

    __test__ = False  # a helper, not a test class for pytest to collect

    def __init__(self, root: Path, dn: str = DEFAULT_DN, days: int = 365) -> None:
        self.root = root
        self.dn = dn
        root.mkdir(parents=True)
        (root / "issued").mkdir()
        (root / "index.txt").write_text("")
        (root / "serial").write_text("1000\n")
        (root / "crlnumber").write_text("1000\n")
        (root / "ca.cnf").write_text(_CONFIG.format(dir=root))
        self._openssl(
            "req", "-config", "ca.cnf", "-x509", "-extensions", "ca_ext",
            "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", str(days), "-subj", dn,
        )  # fmt: skip
        self.cert = root / "ca.pem"
        self.key = self._private(root / "ca.key")

    def issue(
        self,
        name: str,
        dn: str,
        *,
        days: int = 30,
        san: str | None = None,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
    ) -> Issued:
        """A new key and a certificate for ``dn``, signed by this CA.

        ``san`` is an openssl subjectAltName value (``DNS:localhost,IP:127.0.0.1``).
        ``not_before``/``not_after`` replace "from now for ``days``", e.g. to
        make a certificate that has already expired.
        """
        extension = ["-addext", f"subjectAltName={san}"] if san else []
        self._openssl(
            "req", "-config", "ca.cnf", "-new", "-newkey", "rsa:2048", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", dn, *extension,
        )  # fmt: skip
        validity = ["-days", str(days)]
        if not_before is not None:
            validity += ["-startdate", _asn1_time(not_before)]
        if not_after is not None:
            validity += ["-enddate", _asn1_time(not_after)]
        self._openssl(
            "ca", "-batch", "-config", "ca.cnf", "-in", f"{name}.csr", "-out", f"{name}.pem",
            "-notext", "-preserveDN", *validity,
        )  # fmt: skip
        return Issued(self.root / f"{name}.pem", self._private(self.root / f"{name}.key"))

    def revoke(self, cert: Path) -> None:
        """Mark ``cert`` revoked: the next ``crl()`` (and ``publish``) lists it."""
        self._openssl("ca", "-config", "ca.cnf", "-revoke", str(cert))

    def crl(self) -> Path:
        """A fresh CRL of this CA, as fetch-crl would download it."""
        self._openssl("ca", "-config", "ca.cnf", "-gencrl", "-out", "crl.pem")
        return self.root / "crl.pem"

    def publish(self, directory: Path, crl: bool = True) -> Path:
        """Write the CA (and its CRL) into ``directory`` under hashed names, like a CA directory."""
        directory.mkdir(parents=True, exist_ok=True)
        digest = self._openssl("x509", "-in", str(self.cert), "-noout", "-hash").strip()
        (directory / f"{digest}.0").write_bytes(self.cert.read_bytes())
        if crl:
            (directory / f"{digest}.r0").write_bytes(self.crl().read_bytes())
        return directory

    def _openssl(self, *args: str) -> str:
        done = subprocess.run(
            ["openssl", *args], cwd=self.root, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"openssl {' '.join(args)} failed:\n{done.stderr}")
        return done.stdout

    @staticmethod
    def _private(key: Path) -> Path:
        # Readable by its owner only, as every consumer (and a real host key) expects.
        key.chmod(0o600)
        return key


def _asn1_time(when: datetime.datetime) -> str:
    """``when`` as openssl ca's -startdate/-enddate want it (GeneralizedTime, UTC)."""
    return when.astimezone(datetime.UTC).strftime("%Y%m%d%H%M%SZ")
