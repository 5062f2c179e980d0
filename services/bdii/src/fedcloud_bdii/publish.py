"""One publish cycle: collect the wanted entries, apply them, report.

``run()`` reads as three steps (collect -> apply -> report). A source either
returns validated entries or raises a BdiiError; on an error nothing is
applied, so the tree keeps the last good data, and the run is reported as
failed three ways: the exit status, an ERROR log line plus the summary line,
and the status file (JSON) that health checks and operators read.

Sources:
- ``ProviderSource`` runs cloud-info-provider (or any command printing its
  glue21json) for a resource BDII.
- ``LdapSource`` reads one or more resource BDIIs for a site BDII and places
  their entries under ``GLUE2DomainID=<site>,o=glue``, beside the site's own
  (``domain.site_entries``).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import ldap
import ldap.dn

from fedcloud_bdii.convert import Converter, Entries, domain_dn, skeleton
from fedcloud_bdii.errors import ProviderRunError
from fedcloud_bdii.updater import Updater, normalize_dn
from fedcloud_common.errors import FedcloudError
from fedcloud_common.files import write_json
from fedcloud_common.summary import format_summary

LOG = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_PARTIAL = 0, 1, 2


@dataclass
class Wanted:
    """What a source collected: entries built on demand, and what they were built from.

    ``fingerprint`` names the input (None: unknown, never skipped); the
    Updater builds the entries only when it differs from the last applied.
    """

    build: Callable[[], Entries]
    fingerprint: str | None = None
    document: bytes | None = None  # the provider's GLUE 2.1 JSON, as printed


def fingerprint(*parts: bytes) -> str:
    digest = hashlib.blake2b(digest_size=20)
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


@dataclass
class ProviderSource:
    """Runs the provider command and converts its JSON."""

    command: list[str]
    converter: Converter
    timeout: float = 600.0
    env: dict[str, str] | None = None

    def __call__(self) -> Wanted:
        try:
            done = subprocess.run(
                self.command, capture_output=True, timeout=self.timeout, env=self.env
            )
        except subprocess.TimeoutExpired as exc:
            raise ProviderRunError(problem=f"timed out after {self.timeout:.0f}s") from exc
        except OSError as exc:
            raise ProviderRunError(problem=f"cannot run {self.command[0]}: {exc}") from exc
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
            raise ProviderRunError(problem=f"exit status {done.returncode}: {' | '.join(tail)}")
        document = done.stdout
        return Wanted(
            build=lambda: self.converter.convert_text(document),
            fingerprint=fingerprint(self.converter.site.encode(), document),
            document=document,
        )


@dataclass
class LdapSource:
    """Aggregates resource BDIIs (anonymous LDAP reads) under the site's domain.

    ``own`` are the entries the site BDII publishes itself (the domain's
    details, Location, Contacts, its endpoint); a resource BDII's entry with
    the same DN (its copy of the domain) is merged into them.
    """

    urls: list[str]
    site: str
    timeout: float = 30.0
    own: Entries = field(default_factory=dict)

    def __call__(self) -> Entries:
        entries = skeleton(self.site)
        for dn, attrs in self.own.items():
            _union(entries.setdefault(dn, {}), attrs)  # copies: own stays as given
        seen = {normalize_dn(dn): dn for dn in entries}
        site_suffix = normalize_dn(domain_dn(self.site))
        for url in self.urls:
            for dn, attrs in self._read(url):
                key = normalize_dn(dn)
                if key in (normalize_dn("o=glue"), site_suffix):
                    continue
                if not key.endswith("," + site_suffix):
                    # Published directly under o=glue: move it into the site's domain.
                    dn = dn[: -len("o=glue")] + domain_dn(self.site)
                    key = normalize_dn(dn)
                if key in seen:
                    _union(entries[seen[key]], attrs)
                    continue
                seen[key] = dn
                entries[dn] = attrs
        # The site's Updater validates every entry it writes.
        return entries

    def _read(self, url: str) -> list[tuple[str, dict[str, list[bytes]]]]:
        conn = ldap.initialize(url)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, self.timeout)
        conn.set_option(ldap.OPT_TIMEOUT, self.timeout)
        try:
            return conn.search_s("o=glue", ldap.SCOPE_SUBTREE, "(objectClass=*)", ["*"])
        except ldap.LDAPError as exc:
            raise ProviderRunError(problem=f"resource BDII {url}: {exc}") from exc
        finally:
            conn.unbind_s()


def _given(entries: Entries) -> Callable[[], Entries]:
    return lambda: entries


def _union(into: dict[str, list[bytes]], attrs: dict[str, list[bytes]]) -> None:
    for name, values in attrs.items():
        merged = into.setdefault(name, [])
        merged.extend(v for v in values if v not in merged)


@dataclass
class Publisher:
    """collect -> apply -> report, for one BDII (``job`` names it in logs)."""

    job: str
    source: Callable[[], Wanted | Entries]
    updater: Updater
    status_path: Path
    clock: Callable[[], float] = time.time

    def run(self) -> int:
        """Run one cycle and return the exit status (0 ok, 1 failed, 2 partial).

        1. collect: the source builds and validates every wanted entry;
        2. apply: the updater writes only the differences;
        3. report: log, summary line and status file, whatever happened.
        """
        started = time.monotonic()
        # The service's own loop and the supervisor's scheduled job may both
        # publish into one tree: one at a time, the second waits its turn.
        self.status_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.status_path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return self._run_locked(started)

    def _run_locked(self, started: float) -> int:
        try:
            wanted = self.source()
            if not isinstance(wanted, Wanted):
                wanted = Wanted(build=_given(wanted))
            stats = self.updater.apply_if_changed(wanted.fingerprint, wanted.build)
        except (FedcloudError, ldap.LDAPError) as exc:  # e.g. a VO's project not found
            return self._report("failed", {}, _reason(exc), started)
        outcome = "ok" if stats.failed == 0 else "partial"
        error = f"{stats.failed} LDAP operations failed" if stats.failed else None
        return self._report(outcome, stats.as_dict(), error, started)

    def _report(self, outcome: str, counts: dict, error: str | None, started: float) -> int:
        duration = time.monotonic() - started
        now = datetime.fromtimestamp(self.clock(), UTC).isoformat()
        previous = self._read_status()
        status = {
            "job": self.job,
            "outcome": outcome,
            "time": now,
            "error": error,
            "stats": counts,
            "duration_s": round(duration, 3),
            "last_success": now if outcome == "ok" else previous.get("last_success"),
            "consecutive_failures": 0
            if outcome == "ok"
            else previous.get("consecutive_failures", 0) + 1,
        }
        write_json(self.status_path, status)
        # Once, on stdout: the supervisor parses it, and it is the service's log.
        print(format_summary(self.job, outcome, counts, duration, error or ""), flush=True)
        return {"ok": EXIT_OK, "failed": EXIT_FAILED}.get(outcome, EXIT_PARTIAL)

    def _read_status(self) -> dict:
        try:
            return json.loads(self.status_path.read_text())
        except (FileNotFoundError, ValueError):
            return {}


def _reason(exc: Exception) -> str:
    """One line: an LDAP error's description and detail, not the dict it carries."""
    if isinstance(exc, ldap.LDAPError) and exc.args and isinstance(exc.args[0], dict):
        detail = exc.args[0]
        return " ".join(str(detail.get(k, "")) for k in ("desc", "info")).strip() or str(exc)
    return " ".join(str(exc).split())
