"""Debian's slapd, configured and run as an unprivileged BDII.

One layout serves both roles (resource and site BDII):

- ``o=glue`` in an mdb database with ``maxsize`` set: the default 10 MiB map
  fills at about 8,300 GLUE entries, after which every write fails.
- ``o=infosys`` in a small second mdb database: the update statistics
  (infosys.py), written by the same updater identity.
- Anonymous clients read everything and write nothing (no ACL grants write).
- Only the updater writes: it binds with SASL EXTERNAL over the ldapi socket,
  and slapd maps the socket peer's uid (the uid slapd runs as) to the rootdn.
  The rootdn has no password, so nothing on the network can bind as it and
  there is no secret to manage.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import ldap

from fedcloud_bdii import infosys
from fedcloud_bdii.schema import Schema, schema_path

SUFFIX = "o=glue"
ROOTDN = "cn=updater,o=glue"
# 4 GiB of address space (a sparse file: disk use follows the data). 100k
# cloud entries take about 200 MB.
DEFAULT_MAXSIZE = 4 * 1024**3
# A few entries of statistics per BDII.
INFOSYS_MAXSIZE = 64 * 1024**2
SLAPD = "/usr/sbin/slapd"
CORE_SCHEMA = "/etc/ldap/schema/core.schema"


@dataclass(frozen=True)
class SlapdLayout:
    """Where one BDII keeps its config, database and sockets."""

    root: Path
    port: int
    host: str = "127.0.0.1"
    maxsize: int = DEFAULT_MAXSIZE
    # The uid whose ldapi connections write (the updater's); default: ours.
    writer_uid: int = field(default_factory=os.getuid)

    @property
    def conf(self) -> Path:
        return self.root / "slapd.conf"

    @property
    def db_dir(self) -> Path:
        return self.root / "db"

    @property
    def infosys_dir(self) -> Path:
        return self.root / "infosys"

    @property
    def socket(self) -> Path:
        return self.root / "ldapi"

    @property
    def ldapi_uri(self) -> str:
        return "ldapi://" + urllib.parse.quote(str(self.socket), safe="")

    @property
    def ldap_uri(self) -> str:
        return f"ldap://{self.host}:{self.port}"

    def render(self) -> str:
        """slapd.conf text; ID and foreign-key attributes are indexed for equality."""
        indexed = sorted(
            a.name for a in Schema().attributes.values() if a.name.endswith(("ID", "ForeignKey"))
        )
        return "\n".join(
            [
                f"include {CORE_SCHEMA}",
                f"include {schema_path()}",
                f"include {infosys.schema_path()}",
                f"pidfile {self.root / 'slapd.pid'}",
                f"argsfile {self.root / 'slapd.args'}",
                "modulepath /usr/lib/ldap",
                "moduleload back_mdb",
                "sizelimit unlimited",
                "timelimit 2400",
                # The ldapi peer with our uid is the updater; nobody else is mapped.
                f'authz-regexp "^gidNumber=[0-9]+[+]uidNumber={self.writer_uid},'
                f'cn=peercred,cn=external,cn=auth$" "{ROOTDN}"',
                "",
                "database mdb",
                f'suffix "{SUFFIX}"',
                f'rootdn "{ROOTDN}"',
                f"directory {self.db_dir}",
                f"maxsize {self.maxsize}",
                # The tree is a cache the next publish rebuilds: no fsync per
                # write (measured here: a 12k-entry first load, 20 s -> 6 s).
                "dbnosync",
                "index objectClass eq",
                *(f"index {name} eq" for name in indexed),
                "access to * by * read",
                "",
                "database mdb",
                f'suffix "{infosys.SUFFIX}"',
                # The same updater identity writes here (a rootdn need not
                # lie under its database's suffix).
                f'rootdn "{ROOTDN}"',
                f"directory {self.infosys_dir}",
                f"maxsize {INFOSYS_MAXSIZE}",
                "dbnosync",
                "access to * by * read",
                "",
            ]
        )

    def write(self) -> None:
        self.db_dir.mkdir(parents=True, exist_ok=True)
        self.infosys_dir.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(self.render())


class Slapd:
    """A running slapd for one layout (``start`` waits until it answers)."""

    def __init__(
        self, layout: SlapdLayout, log: Path | None = None, user: str | None = None
    ) -> None:
        """``user``: drop to this account (slapd -u/-g) when started as root."""
        self.layout = layout
        self.user = user or ("openldap" if os.getuid() == 0 else None)
        self.log = log or layout.root / "slapd.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> None:
        self.layout.write()
        check = subprocess.run(
            ["slaptest", "-Q", "-u", "-f", str(self.layout.conf)], capture_output=True, text=True
        )
        if check.returncode:
            raise RuntimeError(f"slaptest rejected {self.layout.conf}: {check.stderr.strip()}")
        drop = []
        if self.user:
            for path in [self.layout.root, *self.layout.root.rglob("*")]:
                shutil.chown(path, self.user, self.user)
            drop = ["-u", self.user, "-g", self.user]
        urls = f"{self.layout.ldap_uri}/ {self.layout.ldapi_uri}"
        with self.log.open("ab") as log:
            # -d 0: stay in the foreground (we supervise it) without debug output.
            self.process = subprocess.Popen(
                [SLAPD, "-f", str(self.layout.conf), "-h", urls, "-d", "0", *drop],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"slapd exited with {self.process.returncode}; see {self.log}")
            try:
                conn = ldap.initialize(self.layout.ldap_uri)
                conn.simple_bind_s()
                conn.unbind_s()
                return
            except ldap.SERVER_DOWN:
                time.sleep(0.1)
        raise RuntimeError(f"slapd did not answer on {self.layout.ldap_uri} in {timeout}s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


def connect_updater(layout: SlapdLayout) -> ldap.ldapobject.LDAPObject:
    """A connection bound as the rootdn via ldapi peer credentials."""
    conn = ldap.initialize(layout.ldapi_uri)
    conn.sasl_non_interactive_bind_s("EXTERNAL")
    return conn
