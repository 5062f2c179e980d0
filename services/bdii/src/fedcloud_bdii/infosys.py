"""Update statistics under ``o=infosys``, where BDII operators read them.

Debian's and EGI's bdii-update write one ``UpdateStats`` entry per BDII
(``Hostname=<host>,o=infosys``) after every cycle, and operators and
monitoring probes read it with ``ldapsearch -b o=infosys``. We publish the
same object class with the same attribute names and OIDs (BDII.schema's
``1.3.6.1.4.1.8006.100.3``), so those readers work unchanged:

- TotalEntries, NewEntries, ModifiedEntries, DeletedEntries, FailedAdds,
  FailedModifies, FailedDeletes: what the cycle did;
- UpdateTime (whole cycle), ProvidersTime (running the provider or reading
  the resource BDIIs), DBUpdateTime (diff and writes), ReadTime and
  QueryTime (reading the current tree; 0 when the cycle was skipped),
  PluginsTime (always 0: there are no plugins), all whole seconds as the
  schema's INTEGER syntax requires.

A site BDII adds one ``BdiiSource`` entry per resource BDII under its
UpdateStats (``SourceURL=<url>,Hostname=<host>,o=infosys``) saying whether the
source answered (``ok``), is served from its cache (``stale``) or was dropped
(``expired``/``unreachable``). That class is ours (numbered below the GLUE arc
like the cloud classes, see schema.py, and not registered).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import ldap
import ldap.dn
import ldap.modlist

SUFFIX = "o=infosys"
LOG = logging.getLogger(__name__)

BDII_ARC = "1.3.6.1.4.1.8006.100"
SOURCE_ARC = "1.3.6.1.4.1.6757.100.1.1.200"
STATS_ATTRIBUTES = (
    "TotalEntries",
    "UpdateTime",
    "DBUpdateTime",
    "NewEntries",
    "QueryTime",
    "ProvidersTime",
    "PluginsTime",
    "FailedAdds",
    "ModifiedEntries",
    "DeletedEntries",
    "FailedDeletes",
    "FailedModifies",
    "ReadTime",
)
# BDII.schema's numbering of the attributes above (Hostname is .1).
_STATS_OIDS = {
    "TotalEntries": 2,
    "UpdateTime": 3,
    "DBUpdateTime": 4,
    "NewEntries": 5,
    "QueryTime": 6,
    "ProvidersTime": 7,
    "PluginsTime": 8,
    "FailedAdds": 9,
    "ModifiedEntries": 10,
    "DeletedEntries": 11,
    "FailedDeletes": 12,
    "FailedModifies": 13,
    "ReadTime": 14,
}
SOURCE_ATTRIBUTES = ("SourceState", "SourceEntries", "SourceLastSuccess", "SourceError")


@dataclass(frozen=True)
class SourceStatus:
    """How one resource BDII fared in a site BDII's cycle."""

    url: str
    state: str  # ok, stale (served from cache), expired (cache too old), unreachable
    entries: int
    last_success: str | None  # ISO time of the last good read
    error: str | None = None


def render_schema() -> str:
    """The o=infosys schema in slapd.conf syntax."""
    ia5 = "EQUALITY caseIgnoreIA5Match SUBSTR caseIgnoreIA5SubstringsMatch"
    ia5 += " SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 SINGLE-VALUE"
    integer = "EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE"
    text = "EQUALITY caseExactMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE"
    lines = [
        "# o=infosys update statistics, shipped by fedcloud-bdii (see infosys.py).",
        f"attributetype ( {BDII_ARC}.3.1 NAME 'Hostname' {ia5} )",
        *(
            f"attributetype ( {BDII_ARC}.3.{number} NAME '{name}' {integer} )"
            for name, number in _STATS_OIDS.items()
        ),
        # The BDII's own spelling of this OID ("1.2.6...") is kept: it is
        # what existing o=infosys databases and schema checkers know.
        f"objectclass ( 1.2.6.1.4.1.8006.100.3 NAME 'UpdateStats' STRUCTURAL "
        f"MUST ( Hostname $ {' $ '.join(STATS_ATTRIBUTES)} ) )",
        f"attributetype ( {SOURCE_ARC}.1 NAME 'SourceURL' {text} )",
        f"attributetype ( {SOURCE_ARC}.2 NAME 'SourceState' {text} )",
        f"attributetype ( {SOURCE_ARC}.3 NAME 'SourceEntries' {integer} )",
        f"attributetype ( {SOURCE_ARC}.4 NAME 'SourceLastSuccess' {text} )",
        f"attributetype ( {SOURCE_ARC}.5 NAME 'SourceError' {text} )",
        f"objectclass ( {SOURCE_ARC}.100 NAME 'BdiiSource' STRUCTURAL "
        "MUST ( SourceURL $ SourceState $ SourceEntries ) "
        "MAY ( SourceLastSuccess $ SourceError ) )",
    ]
    return "\n\n".join(lines) + "\n"


def schema_path() -> Path:
    """The shipped infosys.schema (a test checks it matches ``render_schema``)."""
    return Path(str(files("fedcloud_bdii") / "infosys.schema"))


def stats_dn(hostname: str) -> str:
    return f"Hostname={ldap.dn.escape_dn_chars(hostname)},{SUFFIX}"


def source_dn(hostname: str, url: str) -> str:
    return f"SourceURL={ldap.dn.escape_dn_chars(url)},{stats_dn(hostname)}"


def publish(
    conn: ldap.ldapobject.LDAPObject,
    hostname: str,
    counts: dict[str, int],
    sources: list[SourceStatus],
) -> None:
    """Replace this BDII's statistics (and its sources') under o=infosys.

    ``counts`` maps every name of STATS_ATTRIBUTES to an integer. Raises
    ldap.LDAPError: the caller reports it (statistics are not worth failing
    the publish for, but not worth hiding either).
    """
    _ensure(conn, SUFFIX, {"objectClass": [b"organization"], "o": [b"infosys"]})
    stats = {
        "objectClass": [b"UpdateStats"],
        "Hostname": [hostname.encode()],
        **{name: [str(int(counts.get(name, 0))).encode()] for name in STATS_ATTRIBUTES},
    }
    _put(conn, stats_dn(hostname), stats)
    wanted = set()
    for source in sources:
        dn = source_dn(hostname, source.url)
        wanted.add(dn.lower())
        entry = {
            "objectClass": [b"BdiiSource"],
            "SourceURL": [source.url.encode()],
            "SourceState": [source.state.encode()],
            "SourceEntries": [str(source.entries).encode()],
            "SourceLastSuccess": [source.last_success.encode()] if source.last_success else [],
            "SourceError": [" ".join(source.error.split()).encode()] if source.error else [],
        }
        _put(conn, dn, entry)
    for dn, _ in conn.search_s(stats_dn(hostname), ldap.SCOPE_ONELEVEL, attrlist=["1.1"]):
        if dn.lower() not in wanted:
            conn.delete_s(dn)  # a resource BDII no longer configured


def _ensure(conn: ldap.ldapobject.LDAPObject, dn: str, entry: dict[str, list[bytes]]) -> None:
    try:
        conn.search_s(dn, ldap.SCOPE_BASE, attrlist=["1.1"])
    except ldap.NO_SUCH_OBJECT:
        conn.add_s(dn, list(entry.items()))


def _put(conn: ldap.ldapobject.LDAPObject, dn: str, entry: dict[str, list[bytes]]) -> None:
    """Add, or replace every attribute of, one entry (an empty list removes one)."""
    try:
        conn.add_s(dn, [(name, values) for name, values in entry.items() if values])
    except ldap.ALREADY_EXISTS:
        replace = [(ldap.MOD_REPLACE, name, values or None) for name, values in entry.items()]
        conn.modify_s(dn, replace)
