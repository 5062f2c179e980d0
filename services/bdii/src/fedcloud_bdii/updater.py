"""Apply wanted GLUE entries to a live slapd as differences only.

Unlike Debian's bdii-update 6.0.0 (which shells out to ldapadd with options
OpenLDAP 2.5 rejects and then reports success), every operation here goes
through python-ldap and every failure is counted and logged.

One ``apply`` = read the tree under the suffix, diff, then add (parents
first), modify (only changed attributes) and delete (children first). An
entry that vanished from the wanted set is deleted only after it has been
missing for ``delete_delay`` seconds; until then it is "delayed". The pending
deletions live in a small JSON file so the delay survives restarts.
"""

from __future__ import annotations

import functools
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable
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

    def apply(self, wanted: Entries) -> UpdateStats:
        """Make the tree equal ``wanted``; nothing is written if any change is invalid.

        1. read the tree (or reuse the last cycle's view, see ``_tree``);
        2. diff: entries to add, attributes to modify, entries vanished;
        3. validate every entry that would be written against the schema
           (unchanged entries are byte-identical to ones slapd already holds);
        4. write: adds parents first, modifies, then due deletions children first.
        """
        stats = UpdateStats(entries=len(wanted))
        have = self._tree()
        want = {normalize_dn(dn): (dn, attrs) for dn, attrs in wanted.items()}
        adds = sorted(want.keys() - have.keys(), key=_depth)
        mods, deferred = [], set()
        for key in want.keys() & have.keys():
            old, new = have[key][1], want[key][1]
            changes = [] if old == new else _modlist(old, new)
            if changes and self._only_fresh_timestamp(old, changes):
                deferred.add(key)
            elif changes:
                mods.append((key, changes))
            else:
                stats.unchanged += 1
        stats.deferred = len(deferred)
        for key in [*adds, *(key for key, _ in mods)]:
            try:
                self.schema.validate(*want[key])
            except SchemaViolationError as exc:
                raise ProviderOutputError(problem=str(exc)) from exc

        self._cache = None  # the tree is changing: trust only a fresh read
        for key in adds:
            dn, attrs = want[key]
            if self._try("add", dn, self.conn.add_s, dn, list(attrs.items())):
                stats.added += 1
            else:
                stats.failed += 1
        for key, changes in mods:
            if self._try("modify", want[key][0], self.conn.modify_s, have[key][0], changes):
                stats.modified += 1
            else:
                stats.failed += 1
        deleted = self._delete_vanished(have, want, stats)
        if stats.failed == 0:
            tree = {key: have[key] for key in have.keys() - want.keys() - deleted}
            tree.update(want)
            tree.update((key, have[key]) for key in deferred)  # slapd kept the old time
            self._remember(tree)
        return stats

    def _only_fresh_timestamp(self, old: Entry, changes: list) -> bool:
        """True when only GLUE2EntityCreationTime changed and the published one is fresh.

        cloud-info-provider stamps every object with the time of the run, so
        without this every cycle rewrites every entry. The new time is
        published once the old one is half its GLUE2EntityValidity old (6 h
        for cloud-info-provider's 12 h), so consumers never see expired data.
        """
        if any(name.lower() != "glue2entitycreationtime" for _, name, _ in changes):
            return False
        lowered = {name.lower(): values for name, values in old.items()}
        try:
            published = datetime.fromisoformat(lowered["glue2entitycreationtime"][0].decode())
            validity = float(lowered.get("glue2entityvalidity", [b"0"])[0])
        except (KeyError, IndexError, ValueError):
            return False
        if published.tzinfo is None:
            published = published.replace(tzinfo=UTC)
        return self.clock() - published.timestamp() < validity / 2

    def _tree(self) -> dict[str, tuple[str, Entry]]:
        """The tree by normalized DN: the last cycle's view if slapd still holds it.

        Only this updater can write (see slapd.py). After a fully successful
        cycle it stamps a fresh generation on the suffix entry and keeps its
        view of the tree; a later cycle reuses that view only if the stamp is
        unchanged (same database, nothing written since), else it searches.
        """
        self.ensure_suffix()
        if self._cache is not None:
            found = self.conn.search_s(self.suffix, ldap.SCOPE_BASE, attrlist=["description"])
            if found and found[0][1].get("description") == [self._cache[0]]:
                return self._cache[1]
        return {normalize_dn(dn): (dn, attrs) for dn, attrs in self.current().items()}

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
                stats.failed += 1
        stats.delayed = len(pending)
        self._save_pending(pending)
        return deleted

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


def _modlist(old: Entry, new: Entry) -> list[tuple[int, str, list[bytes] | None]]:
    """Replace changed attributes, delete dropped ones; values compared as sets."""
    old_l = {name.lower(): (name, values) for name, values in old.items()}
    new_l = {name.lower(): (name, values) for name, values in new.items()}
    changes: list[tuple[int, str, list[bytes] | None]] = []
    for key, (name, values) in new_l.items():
        if key not in old_l or set(old_l[key][1]) != set(values):
            changes.append((ldap.MOD_REPLACE, name, values))
    for key, (name, _) in old_l.items():
        if key not in new_l:
            changes.append((ldap.MOD_DELETE, name, None))
    return changes
