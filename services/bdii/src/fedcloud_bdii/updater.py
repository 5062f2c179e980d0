"""Apply wanted GLUE entries to a live slapd as differences only.

Unlike Debian's bdii-update 6.0.0 (which shells out to ldapadd with options
OpenLDAP 2.5 rejects and then reports success), every operation here goes
through python-ldap and every failure is counted and logged.

One ``apply`` = read the tree under the suffix, diff, then add (parents
first), modify (only changed attributes) and delete (children first). An
entry that vanished from the wanted set is deleted only after it has been
missing for ``delete_delay`` seconds; until then it is "delayed". The pending
deletions live in a small JSON file so the delay survives restarts.

A cycle whose input is byte-identical to the last applied one
(``apply_if_changed`` with the same fingerprint) is skipped before any
conversion: profiling showed a no-change cycle spent ~90 % of its time
turning the provider's JSON into entries only to find them all equal. It is
skipped only while slapd still holds exactly what this updater last wrote
(the generation stamp on the suffix, see ``_tree``) and nothing becomes due
(a deferred CreationTime or a delayed deletion), so a skip never hides work.
Writes are pipelined (many requests in flight, one level of the tree at a
time), which is what makes an all-modified cycle cheaper than a reload.
"""

from __future__ import annotations

import functools
import json
import logging
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import ldap
import ldap.dn

from fedcloud_bdii.convert import Entries, Entry
from fedcloud_bdii.errors import ProviderOutputError
from fedcloud_bdii.schema import Schema, SchemaViolationError
from fedcloud_common.files import write_json

LOG = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1 << 18)
def normalize_dn(dn: str) -> str:
    """Compare DNs the way slapd does for our (caseExact) naming attributes.

    Cached: each cycle sees the same DNs again, and parsing dominated a
    no-change cycle (about a third of it at 10k entries).
    """
    return ldap.dn.dn2str([[(t.lower(), v, f) for t, v, f in rdn] for rdn in ldap.dn.str2dn(dn)])


@functools.lru_cache(maxsize=1 << 18)
def _parent(key: str) -> str:
    """The normalized DN of a normalized DN's parent."""
    return ldap.dn.dn2str(ldap.dn.str2dn(key)[1:])


def _depth(key: str) -> int:
    """Depth of a normalized DN (its unescaped commas; dn2str escapes them)."""
    return len(ldap.dn.str2dn(key))


@dataclass
class UpdateStats:
    """What one apply did; recorded in the status file and the summary line."""

    entries: int = 0
    added: int = 0
    modified: int = 0
    deleted: int = 0
    delayed: int = 0
    unchanged: int = 0
    deferred: int = 0  # only a newer CreationTime, not yet due (see _only_fresh_timestamp)
    failed: int = 0
    failed_adds: int = 0
    failed_modifies: int = 0
    failed_deletes: int = 0
    skipped: int = 0  # 1: the input was unchanged, nothing was converted or read

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Updater:
    """Keeps the subtree below ``suffix`` equal to the wanted entries."""

    def __init__(
        self,
        conn: ldap.ldapobject.LDAPObject,
        state_dir: Path,
        delete_delay: float,
        suffix: str = "o=glue",
        clock: Callable[[], float] = time.time,
        schema: Schema | None = None,
    ) -> None:
        self.conn = conn
        self.schema = schema or Schema()
        self._cache: tuple[bytes, dict[str, tuple[str, Entry]]] | None = None
        # What the last fully applied cycle was made from, and until when it
        # needs no further work: (fingerprint, generation stamp, quiet until, stats).
        self._settled: tuple[str, bytes, float, UpdateStats] | None = None
        self._quiet_until = float("inf")
        self.read_s = 0.0
        self.suffix = suffix
        self.delete_delay = delete_delay
        self.pending_path = state_dir / "pending-deletes.json"
        self.clock = clock

    def ensure_suffix(self) -> None:
        """Create the suffix entry (o=glue) on a fresh database."""
        try:
            self.conn.search_s(self.suffix, ldap.SCOPE_BASE, attrlist=["1.1"])
        except ldap.NO_SUCH_OBJECT:
            rdn_type, rdn_value, _ = ldap.dn.str2dn(self.suffix)[0][0]
            self.conn.add_s(
                self.suffix,
                [("objectClass", [b"organization"]), (rdn_type, [rdn_value.encode()])],
            )

    def current(self) -> Entries:
        """Every entry below the suffix (not the suffix itself), as stored."""
        found = self.conn.search_s(self.suffix, ldap.SCOPE_SUBTREE, "(objectClass=*)", ["*"])
        suffix = normalize_dn(self.suffix)
        return {dn: attrs for dn, attrs in found if normalize_dn(dn) != suffix}

    def apply_if_changed(
        self, fingerprint: str | None, build: Callable[[], Entries]
    ) -> UpdateStats:
        """``apply(build())``, unless ``fingerprint`` is what the tree already holds.

        ``fingerprint`` identifies the input (a hash of the provider's JSON,
        or of what the resource BDIIs returned); None never skips.
        """
        if fingerprint is not None and (skipped := self._skip(fingerprint)) is not None:
            return skipped
        stats = self.apply(build())
        if fingerprint is not None and self._cache is not None:
            self._settled = (fingerprint, self._cache[0], self._quiet_until, stats)
        return stats

    def _skip(self, fingerprint: str) -> UpdateStats | None:
        if self._settled is None:
            return None
        last, stamp, quiet_until, stats = self._settled
        if last != fingerprint or self.clock() >= quiet_until:
            return None
        found = self.conn.search_s(self.suffix, ldap.SCOPE_BASE, attrlist=["description"])
        if not found or found[0][1].get("description") != [stamp]:
            return None
        unchanged = stats.entries - stats.deferred
        return UpdateStats(
            entries=stats.entries,
            unchanged=unchanged,
            deferred=stats.deferred,
            delayed=stats.delayed,
            skipped=1,
        )

    def apply(self, wanted: Entries) -> UpdateStats:
        """Make the tree equal ``wanted``; nothing is written if any change is invalid.

        1. read the tree (or reuse the last cycle's view, see ``_tree``);
        2. diff: entries to add, attributes to modify, entries vanished;
        3. validate every entry that would be written against the schema
           (unchanged entries are byte-identical to ones slapd already holds);
        4. write: adds parents first, modifies, then due deletions children first.
        """
        stats = UpdateStats(entries=len(wanted))
        self._settled = None
        self._quiet_until = float("inf")
        have = self._tree()
        want = {normalize_dn(dn): (dn, attrs) for dn, attrs in wanted.items()}
        adds = sorted(want.keys() - have.keys(), key=_depth)
        mods, deferred = [], set()
        for key in want.keys() & have.keys():
            old, new = have[key][1], want[key][1]
            changes = [] if old == new else _modlist(old, new)
            due = self._fresh_timestamp_due(old, changes) if changes else None
            if due is not None:
                deferred.add(key)
                self._quiet_until = min(self._quiet_until, due)
            elif changes:
                mods.append((key, changes))
            else:
                stats.unchanged += 1
        stats.deferred = len(deferred)
        try:
            for key in adds:
                self.schema.validate(*want[key])
            for key, changes in mods:
                names = {name.lower() for _, name, _ in changes}
                self.schema.validate(*want[key], changed=names)
        except SchemaViolationError as exc:
            raise ProviderOutputError(problem=str(exc)) from exc

        self._cache = None  # the tree is changing: trust only a fresh read
        for level in _levels(adds):
            done, failed = self._pipelined(
                "add",
                ((want[key][0], self.conn.add_ext, list(want[key][1].items())) for key in level),
            )
            stats.added += done
            stats.failed_adds += failed
        done, failed = self._pipelined(
            "modify", ((have[key][0], self.conn.modify_ext, changes) for key, changes in mods)
        )
        stats.modified += done
        stats.failed_modifies = failed
        deleted = self._delete_vanished(have, want, stats)
        stats.failed = stats.failed_adds + stats.failed_modifies + stats.failed_deletes
        if stats.failed == 0:
            tree = {key: have[key] for key in have.keys() - want.keys() - deleted}
            tree.update(want)
            tree.update((key, have[key]) for key in deferred)  # slapd kept the old time
            self._remember(tree)
        return stats

    def _fresh_timestamp_due(self, old: Entry, changes: list) -> float | None:
        """When only GLUE2EntityCreationTime changed and the published one is fresh:
        the time it becomes due; otherwise None (write the change now).

        cloud-info-provider stamps every object with the time of the run, so
        without this every cycle rewrites every entry. The new time is
        published once the old one is half its GLUE2EntityValidity old (6 h
        for cloud-info-provider's 12 h), so consumers never see expired data.
        """
        if any(name.lower() != "glue2entitycreationtime" for _, name, _ in changes):
            return None
        lowered = {name.lower(): values for name, values in old.items()}
        try:
            published = datetime.fromisoformat(lowered["glue2entitycreationtime"][0].decode())
            validity = float(lowered.get("glue2entityvalidity", [b"0"])[0])
        except (KeyError, IndexError, ValueError):
            return None
        if published.tzinfo is None:
            published = published.replace(tzinfo=UTC)
        due = published.timestamp() + validity / 2
        return due if self.clock() < due else None

    def _tree(self) -> dict[str, tuple[str, Entry]]:
        """The tree by normalized DN: the last cycle's view if slapd still holds it.

        Only this updater can write (see slapd.py). After a fully successful
        cycle it stamps a fresh generation on the suffix entry and keeps its
        view of the tree; a later cycle reuses that view only if the stamp is
        unchanged (same database, nothing written since), else it searches.
        """
        self.ensure_suffix()
        self.read_s = 0.0
        if self._cache is not None:
            found = self.conn.search_s(self.suffix, ldap.SCOPE_BASE, attrlist=["description"])
            if found and found[0][1].get("description") == [self._cache[0]]:
                return self._cache[1]
        started = time.monotonic()
        tree = {normalize_dn(dn): (dn, attrs) for dn, attrs in self.current().items()}
        self.read_s = time.monotonic() - started  # o=infosys ReadTime
        return tree

    def _remember(self, tree: dict[str, tuple[str, Entry]]) -> None:
        stamp = f"fedcloud-bdii generation {uuid.uuid4()}".encode()
        if self._try(
            "stamp",
            self.suffix,
            self.conn.modify_s,
            self.suffix,
            [(ldap.MOD_REPLACE, "description", [stamp])],
        ):
            self._cache = (stamp, tree)

    def _delete_vanished(self, have: dict, want: dict, stats: UpdateStats) -> set[str]:
        now = self.clock()
        pending = self._load_pending()
        vanished = have.keys() - want.keys()
        pending = {key: since for key, since in pending.items() if key in vanished}
        due = []
        for key in vanished:
            since = pending.setdefault(key, now)
            if now - since >= self.delete_delay:
                due.append(key)
            else:
                self._quiet_until = min(self._quiet_until, since + self.delete_delay)
        deleted: set[str] = set()
        # Deepest first; an entry that still has children (wanted, delayed or
        # not deletable) waits for a later cycle.
        children = Counter(_parent(key) for key in have) if due else Counter()
        for key in sorted(due, key=_depth, reverse=True):
            if children[key]:
                continue
            dn = have[key][0]
            if self._try("delete", dn, self.conn.delete_s, dn):
                stats.deleted += 1
                deleted.add(key)
                pending.pop(key, None)
                children[_parent(key)] -= 1
            else:
                stats.failed_deletes += 1
        if due and len(deleted) < len(due):
            self._quiet_until = now  # parents left for the next cycle: do not skip it
        stats.delayed = len(pending)
        self._save_pending(pending)
        return deleted

    def _pipelined(
        self, verb: str, requests: Iterable[tuple[str, Callable[..., int], object]]
    ) -> tuple[int, int]:
        """Send (dn, async call, argument) requests with up to WINDOW in flight.

        One synchronous request at a time spends most of its time waiting for
        the round trip; slapd answers pipelined requests as fast as it writes.
        Callers pass only independent requests (one tree level of adds).
        Returns (done, failed).
        """
        done = failed = 0
        waiting: deque[tuple[int, str]] = deque()

        def collect() -> None:
            nonlocal done, failed
            msgid, dn = waiting.popleft()
            if self._try(verb, dn, self.conn.result3, msgid):
                done += 1
            else:
                failed += 1

        for dn, call, argument in requests:
            try:
                waiting.append((call(dn, argument), dn))
            except ldap.LDAPError as exc:  # not even sent (e.g. the connection broke)
                LOG.error("%s %s failed: %s", verb, dn, exc)
                failed += 1
            if len(waiting) >= WINDOW:
                collect()
        while waiting:
            collect()
        return done, failed

    def _try(self, verb: str, dn: str, call: Callable, *args: object) -> bool:
        try:
            call(*args)
            return True
        except ldap.LDAPError as exc:
            detail = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
            LOG.error(
                "%s %s failed: %s %s", verb, dn, detail.get("desc", exc), detail.get("info", "")
            )
            return False

    def _load_pending(self) -> dict[str, float]:
        try:
            return json.loads(self.pending_path.read_text())
        except FileNotFoundError:
            return {}

    def _save_pending(self, pending: dict[str, float]) -> None:
        write_json(self.pending_path, pending)


# Requests in flight at once: enough to hide the round trip, few enough that
# one failing level does not queue thousands of doomed requests.
WINDOW = 64


def _levels(keys: list[str]) -> list[list[str]]:
    """Keys sorted by depth, grouped by depth: a level's parents exist before it is sent."""
    levels: list[list[str]] = []
    last = -1
    for key in keys:
        depth = _depth(key)
        if depth != last:
            levels.append([])
            last = depth
        levels[-1].append(key)
    return levels


def _modlist(old: Entry, new: Entry) -> list[tuple[int, str, list[bytes] | None]]:
    """Replace changed attributes, delete dropped ones; values compared as sets.

    Names are matched case-insensitively, but the common case (slapd returns
    the schema's spelling, which the converter uses too) is looked up directly.
    """
    changes: list[tuple[int, str, list[bytes] | None]] = []
    old_lower: dict[str, list[bytes]] | None = None
    for name, values in new.items():
        before = old.get(name)
        if before is None:
            if old_lower is None:
                old_lower = {n.lower(): v for n, v in old.items()}
            before = old_lower.get(name.lower())
        if before is None or (before != values and set(before) != set(values)):
            changes.append((ldap.MOD_REPLACE, name, values))
    if old.keys() != new.keys():
        new_lower = {name.lower() for name in new}
        changes.extend(
            (ldap.MOD_DELETE, name, None) for name in old if name.lower() not in new_lower
        )
    return changes
