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
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import ldap
import ldap.dn

from fedcloud_bdii import health, infosys
from fedcloud_bdii.convert import Converter, Entries, Entry, domain_dn, skeleton
from fedcloud_bdii.errors import ProviderRunError
from fedcloud_bdii.health import Health
from fedcloud_bdii.infosys import SourceStatus
from fedcloud_bdii.objectstore import ObjectStore, Upload
from fedcloud_bdii.updater import Updater, UpdateStats, normalize_dn
from fedcloud_common.errors import FedcloudError
from fedcloud_common.files import write_atomically, write_json
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
    # The GLUE 2.1 JSON to publish beside the BDII (the provider's, with health).
    document: Callable[[], bytes] | None = None
    sources: list[SourceStatus] = field(default_factory=list)  # a site BDII's resource BDIIs
    problems: list[str] = field(default_factory=list)  # what was stale or missing


def fingerprint(*parts: bytes) -> str:
    digest = hashlib.blake2b(digest_size=20)
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


@dataclass
class ProviderSource:
    """Runs the provider command, probes the cloud's health, converts its JSON.

    ``probe`` (health.py) sets every endpoint's HealthState. If the provider
    fails while the probe finds the cloud unhealthy (the usual reason), the
    last good document (``last_good``) is published again with that health,
    so consumers see the endpoint is down instead of a stale "ok"; the cycle
    is reported partial, naming the provider's failure.
    """

    command: list[str]
    converter: Converter
    timeout: float = 600.0
    env: dict[str, str] | None = None
    probe: Callable[[], Health] | None = None
    last_good: Path | None = None

    def __call__(self) -> Wanted:
        verdict = self.probe() if self.probe else None
        problems = []
        try:
            document = self._run()
        except ProviderRunError as exc:
            saved = self._saved()
            if verdict is None or verdict.state == "ok" or saved is None:
                raise
            document = saved
            problems.append(
                f"{exc}; the last good data is published with HealthState {verdict.state}"
            )
        return Wanted(
            build=lambda: self._build(document, verdict),
            fingerprint=fingerprint(
                self.converter.site.encode(), document, verdict.key() if verdict else b""
            ),
            document=lambda: health.on_document(document, verdict) if verdict else document,
            problems=problems,
        )

    def _run(self) -> bytes:
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
        return done.stdout

    def _build(self, document: bytes, verdict: Health | None) -> Entries:
        entries = self.converter.convert_text(document)
        if self.last_good is not None:  # it converted: good enough to fall back on
            write_atomically(self.last_good, document)
        return health.on_entries(entries, verdict) if verdict else entries

    def _saved(self) -> bytes | None:
        try:
            return self.last_good.read_bytes() if self.last_good else None
        except FileNotFoundError:
            return None


@dataclass
class LdapSource:
    """Aggregates resource BDIIs (anonymous LDAP reads) under the site's domain.

    ``own`` are the entries the site BDII publishes itself (the domain's
    details, Location, Contacts, its endpoint); a resource BDII's entry with
    the same DN (its copy of the domain) is merged into them.

    Each resource BDII is cached on its own (in ``cache_dir``, so a restart
    keeps it): one that does not answer is served from its last good read
    for that data's validity (its smallest GLUE2EntityValidity, else
    ``DEFAULT_VALIDITY_S``), marked stale (its endpoints' HealthState
    ``unknown``, as EGI's site BDII does, and ``SourceState: stale`` under
    o=infosys), while the others update. Past the validity its data is
    dropped. The cycle fails only when no resource BDII has anything to give.
    """

    urls: list[str]
    site: str
    timeout: float = 30.0
    own: Entries = field(default_factory=dict)
    cache_dir: Path | None = None
    clock: Callable[[], float] = time.time
    _cache: dict[str, tuple[float, list[tuple[str, Entry]]]] = field(
        default_factory=dict, repr=False
    )
    _saved: dict[str, float] = field(default_factory=dict, repr=False)

    def __call__(self) -> Wanted:
        results: list[tuple[str, list[tuple[str, Entry]]]] = []
        statuses: list[SourceStatus] = []
        problems: list[str] = []
        for url in self.urls:
            found, status = self._collect(url)
            statuses.append(status)
            if status.state != "ok":
                problems.append(f"resource BDII {url} {status.state}: {status.error}")
            if found is not None:
                results.append((url, found))
        if self.urls and not results:
            raise ProviderRunError(problem="; ".join(problems))
        digest = fingerprint(
            self.site.encode(),
            repr(sorted(self.own.items())).encode(),
            *(repr((url, found)).encode() for url, found in results),
        )
        return Wanted(
            build=lambda: self._merge(results),
            fingerprint=digest,
            sources=statuses,
            problems=problems,
        )

    def _collect(self, url: str) -> tuple[list[tuple[str, Entry]] | None, SourceStatus]:
        """This source's entries (fresh, or cached and marked stale) and its status."""
        now = self.clock()
        cached = self._cached(url)
        try:
            found = self._read(url)
        except ldap.LDAPError as exc:
            reason = _reason(exc)
            if cached is None:
                return None, SourceStatus(url, "unreachable", 0, None, reason)
            read_at, entries = cached
            since = _iso(read_at)
            if now - read_at > _validity(entries):
                return None, SourceStatus(url, "expired", 0, since, reason)
            stale = [(dn, _marked_stale(attrs, url, since)) for dn, attrs in entries]
            return stale, SourceStatus(url, "stale", len(stale), since, reason)
        self._store(url, now, found)
        return found, SourceStatus(url, "ok", len(found), _iso(now))

    def _merge(self, results: list[tuple[str, list[tuple[str, Entry]]]]) -> Entries:
        entries = skeleton(self.site)
        for dn, attrs in self.own.items():
            _union(entries.setdefault(dn, {}), attrs)  # copies: own stays as given
        seen = {normalize_dn(dn): dn for dn in entries}
        site_suffix = normalize_dn(domain_dn(self.site))
        glue = normalize_dn("o=glue")
        for _url, found in results:
            for dn, attrs in found:
                key = normalize_dn(dn)
                if key in (glue, site_suffix):
                    continue
                if not key.endswith("," + site_suffix):
                    # Published directly under o=glue: move it into the site's domain.
                    dn = dn[: -len("o=glue")] + domain_dn(self.site)
                    key = normalize_dn(dn)
                if key in seen:
                    _union(entries[seen[key]], attrs)
                    continue
                seen[key] = dn
                entries[dn] = {name: list(values) for name, values in attrs.items()}
        # The site's Updater validates every entry it writes.
        return entries

    def _read(self, url: str) -> list[tuple[str, Entry]]:
        conn = ldap.initialize(url)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, self.timeout)
        conn.set_option(ldap.OPT_TIMEOUT, self.timeout)
        try:
            found: list[tuple[str, Entry]] = conn.search_s(
                "o=glue", ldap.SCOPE_SUBTREE, "(objectClass=*)", ["*"]
            )
            return found
        finally:
            conn.unbind_s()

    def _cache_file(self, url: str) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / f"{hashlib.sha256(url.encode()).hexdigest()[:24]}.json"

    def _cached(self, url: str) -> tuple[float, list[tuple[str, Entry]]] | None:
        if url in self._cache:
            return self._cache[url]
        path = self._cache_file(url)
        if path is None or not path.exists():
            return None
        try:
            saved = json.loads(path.read_text())
            entries = [
                (dn, {name: [_unb(v) for v in values] for name, values in attrs.items()})
                for dn, attrs in saved["entries"]
            ]
            self._cache[url] = (float(saved["read_at"]), entries)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            LOG.warning("ignoring the unreadable cache of %s (%s): %s", url, path, exc)
            return None
        return self._cache[url]

    def _store(self, url: str, read_at: float, found: list[tuple[str, Entry]]) -> None:
        """Remember a good read; on disk when it changed, or every SAVE_EVERY_S at most.

        An unchanged source is not rewritten each cycle (100k entries are
        seconds of JSON); after a restart its saved read time is then at most
        SAVE_EVERY_S older than the truth, which only shortens its validity.
        """
        previous = self._cache.get(url)
        self._cache[url] = (read_at, found)
        path = self._cache_file(url)
        if path is None:
            return
        saved_at = self._saved.get(url, float("-inf"))
        if previous is not None and previous[1] == found and read_at - saved_at < SAVE_EVERY_S:
            return
        self._saved[url] = read_at
        write_json(
            path,
            {
                "url": url,
                "read_at": read_at,
                "entries": [
                    (dn, {name: [_b(v) for v in values] for name, values in attrs.items()})
                    for dn, attrs in found
                ],
            },
        )


# A resource BDII's data without a GLUE2EntityValidity is served this long
# from the cache (EGI's site BDII serves up to 10 min of cache; GLUE data
# from cloud-info-provider says 12 h, and is kept that long).
DEFAULT_VALIDITY_S = 600.0
SAVE_EVERY_S = 300.0


def _validity(entries: list[tuple[str, Entry]]) -> float:
    values = [
        float(v)
        for _, attrs in entries
        for name, vals in attrs.items()
        if name.lower() == "glue2entityvalidity"
        for v in vals
        if v.isdigit()
    ]
    return min(values) if values else DEFAULT_VALIDITY_S


def _marked_stale(attrs: Entry, url: str, since: str) -> Entry:
    """A cached entry as served while its source is unreachable: states unknown."""
    marked = dict(attrs)
    for name in attrs:
        lowered = name.lower()
        if lowered.endswith("healthstate"):
            marked[name] = [b"unknown"]
            info = f"stale: {url} unreachable, data read {since}".encode()
            marked[name + "Info"] = [info]
    return marked


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def _b(value: bytes) -> str:
    """bytes -> JSON string, losslessly (LDAP values are UTF-8, but need not be)."""
    return value.decode("utf-8", "surrogateescape")


def _unb(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


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
    hostname: str = field(default_factory=socket.getfqdn)  # names its o=infosys entry
    store: ObjectStore | None = None  # where the GLUE 2.1 JSON goes too (objectstore.py)

    def run(self) -> int:
        """Run one cycle and return the exit status (0 ok, 1 failed, 2 partial).

        1. collect: the source builds and validates every wanted entry;
        2. apply: the updater writes only the differences;
        3. report: log, summary line, status file and o=infosys, whatever happened.
        """
        started = time.monotonic()
        # The service's own loop and the supervisor's scheduled job may both
        # publish into one tree: one at a time, the second waits its turn.
        self.status_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.status_path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return self._run_locked(started)

    def _run_locked(self, started: float) -> int:
        timings = {"ProvidersTime": 0.0, "DBUpdateTime": 0.0}
        wanted = Wanted(build=_given({}))
        try:
            wanted = self._collect(timings)
            applied = time.monotonic()
            stats = self.updater.apply_if_changed(wanted.fingerprint, wanted.build)
            timings["DBUpdateTime"] = time.monotonic() - applied
        except (FedcloudError, ldap.LDAPError) as exc:  # e.g. a VO's project not found
            self._infosys(UpdateStats(), timings, started, wanted.sources)
            return self._report("failed", {}, _reason(exc), started, wanted.sources)
        problems = list(wanted.problems)
        if stats.failed:
            problems.insert(0, f"{stats.failed} LDAP operations failed")
        upload = self._upload(wanted, stats)
        if upload and upload.error:
            problems.append(f"object store {self.store.where if self.store else ''} not "
                            f"updated, its last good copy stays: {upload.error}")  # fmt: skip
        problems.extend(self._infosys(stats, timings, started, wanted.sources))
        outcome = "partial" if problems else "ok"
        error = "; ".join(problems) or None
        counts: dict[str, int | str] = dict(stats.as_dict())
        if upload:
            counts["upload"] = upload.outcome
        return self._report(outcome, counts, error, started, wanted.sources, upload)

    def _upload(self, wanted: Wanted, stats: UpdateStats) -> Upload | None:
        """The JSON to the object store, once the BDII holds it (never a failed cycle's)."""
        if self.store is None or wanted.document is None or stats.failed:
            return None
        return self.store.publish(wanted.fingerprint, wanted.document)

    def _collect(self, timings: dict[str, float]) -> Wanted:
        began = time.monotonic()
        try:
            wanted = self.source()
        finally:
            timings["ProvidersTime"] = time.monotonic() - began
        return wanted if isinstance(wanted, Wanted) else Wanted(build=_given(wanted))

    def _infosys(
        self,
        stats: UpdateStats,
        timings: dict[str, float],
        started: float,
        sources: list[SourceStatus],
    ) -> list[str]:
        """Write this cycle's statistics under o=infosys; a failure is a problem to report."""
        read = self.updater.read_s if not stats.skipped else 0.0
        counts = {
            "TotalEntries": stats.entries,
            "NewEntries": stats.added,
            "ModifiedEntries": stats.modified,
            "DeletedEntries": stats.deleted,
            "FailedAdds": stats.failed_adds,
            "FailedModifies": stats.failed_modifies,
            "FailedDeletes": stats.failed_deletes,
            "UpdateTime": round(time.monotonic() - started),
            "ProvidersTime": round(timings["ProvidersTime"]),
            "DBUpdateTime": round(timings["DBUpdateTime"]),
            "ReadTime": round(read),
            "QueryTime": round(read),
            "PluginsTime": 0,
        }
        try:
            infosys.publish(self.updater.conn, self.hostname, counts, sources)
        except ldap.LDAPError as exc:
            LOG.error("cannot write the update statistics under o=infosys: %s", _reason(exc))
            return [f"o=infosys not updated: {_reason(exc)}"]
        return []

    def _report(
        self,
        outcome: str,
        counts: dict,
        error: str | None,
        started: float,
        sources: list[SourceStatus] | None = None,
        upload: Upload | None = None,
    ) -> int:
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
        if sources:
            status["sources"] = [asdict(source) for source in sources]
        if upload:
            status["object_store"] = upload.as_dict()
        elif self.store is not None:  # not tried this cycle: what the last one left
            status["object_store"] = previous.get("object_store")
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
