"""cloud-info-provider 1.2.0 ``glue21json`` output -> GLUE 2.1 LDAP entries.

cloud-info-provider 1.x prints JSON only (no LDIF). This module turns that JSON
into entries under ``GLUE2GroupID=cloud,GLUE2DomainID=<site>,o=glue``:

- DN layout: service under the cloud group; manager, endpoints and shares under
  the service; images, instance types and accelerators under the manager;
  mapping policies under their share, access policies under their endpoint.
- cloud-info-provider repeats each image and flavor once per share with the
  same ID. Those copies are one entity seen by several shares, so they become
  one entry whose ``...ShareForeignKey`` lists every share (a unique DN per
  ID). Copies that differ in anything but their associations are an error.
- ``Associations`` become GLUE 2 foreign keys; ``OtherInfo`` becomes
  ``key=value`` values of ``GLUE2EntityOtherInfo``.
- Every entry is validated against the shipped schema; one bad entry rejects
  the whole document (``ProviderOutputError``), before anything is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import ldap.dn

from fedcloud_bdii.errors import ProviderOutputError
from fedcloud_bdii.schema import Schema, SchemaViolationError

Entry = dict[str, list[bytes]]
Entries = dict[str, Entry]


@dataclass(frozen=True)
class Kind:
    """How one top-level JSON key maps to LDAP."""

    object_classes: tuple[str, ...]
    id_attr: str
    parent: str | None  # the association that names the parent entry's ID
    defaults: tuple[tuple[str, str], ...] = ()


KINDS: dict[str, Kind] = {
    "CloudComputingService": Kind(
        ("GLUE2Service", "GLUE2CloudComputingService"), "GLUE2ServiceID", None
    ),
    "CloudComputingManager": Kind(
        ("GLUE2Manager", "GLUE2CloudComputingManager"),
        "GLUE2ManagerID",
        "CloudComputingService",
        # GLUE 2 requires a product name; cloud-info-provider gives none, and
        # its only middleware is OpenStack.
        (("ProductName", "OpenStack"),),
    ),
    "CloudComputingEndpoint": Kind(
        ("GLUE2Endpoint", "GLUE2CloudComputingEndpoint"),
        "GLUE2EndpointID",
        "CloudComputingService",
    ),
    "Share": Kind(
        ("GLUE2Share", "GLUE2CloudComputingShare"), "GLUE2ShareID", "CloudComputingService"
    ),
    "CloudComputingImage": Kind(
        ("GLUE2CloudComputingImage",), "GLUE2CloudComputingImageID", "CloudComputingManager"
    ),
    "CloudComputingInstanceType": Kind(
        ("GLUE2CloudComputingInstanceType",),
        "GLUE2CloudComputingInstanceTypeID",
        "CloudComputingManager",
    ),
    "CloudComputingVirtualAccelerator": Kind(
        ("GLUE2CloudComputingVirtualAccelerator",),
        "GLUE2CloudComputingVirtualAcceleratorID",
        "CloudComputingInstanceType",
    ),
    "MappingPolicy": Kind(("GLUE2Policy", "GLUE2MappingPolicy"), "GLUE2PolicyID", "Share"),
    "AccessPolicy": Kind(
        ("GLUE2Policy", "GLUE2AccessPolicy"), "GLUE2PolicyID", "CloudComputingEndpoint"
    ),
}
# Parents before children, so each parent's DN is known when a child needs it.
ORDER = list(KINDS)
# Association names that do not follow "<Class>ForeignKey" in GLUE 2 LDAP.
ASSOCIATION_ALIASES = {"PolicyUserDomain": "UserDomain"}
SKIP = {"ID", "Associations"}


def domain_dn(site: str) -> str:
    return f"GLUE2DomainID={ldap.dn.escape_dn_chars(site)},o=glue"


def group_dn(site: str) -> str:
    return f"GLUE2GroupID=cloud,{domain_dn(site)}"


def skeleton(site: str) -> Entries:
    """The site's domain and cloud group, which every publish includes."""
    return {
        domain_dn(site): {
            "objectClass": [b"GLUE2Domain", b"GLUE2AdminDomain"],
            "GLUE2DomainID": [site.encode()],
            "GLUE2EntityName": [site.encode()],
        },
        group_dn(site): {"objectClass": [b"GLUE2Group"], "GLUE2GroupID": [b"cloud"]},
    }


class Converter:
    """Builds and validates the entries for one site from one JSON document."""

    def __init__(self, site: str, schema: Schema | None = None, validate: bool = True) -> None:
        """``validate=False`` leaves schema checks to the Updater, which checks
        only the entries it is about to write (a no-change cycle writes none)."""
        self.site = site
        self.validate = validate
        self.schema = schema or Schema()
        self._names: dict[tuple[str, str], str | None] = {}

    def convert_text(self, text: str | bytes) -> Entries:
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise ProviderOutputError(problem=f"not JSON ({exc})") from exc
        return self.convert(document)

    def convert(self, document: object) -> Entries:
        if not isinstance(document, dict):
            raise ProviderOutputError(problem="top level is not a JSON object")
        unknown = set(document) - set(KINDS)
        if unknown:
            raise ProviderOutputError(problem=f"unknown object kinds {sorted(unknown)}")
        if len(document.get("CloudComputingService") or []) != 1:
            raise ProviderOutputError(problem="expected exactly one CloudComputingService")
        entries = skeleton(self.site)
        dns: dict[tuple[str, str], str] = {}  # (kind, ID) -> DN
        for kind_name in ORDER:
            objects = document.get(kind_name) or []
            if not isinstance(objects, list):
                raise ProviderOutputError(problem=f"{kind_name} is not a list")
            for obj in objects:
                self._add(entries, dns, kind_name, obj)
        for dn, attrs in entries.items() if self.validate else ():
            try:
                self.schema.validate(dn, attrs)
            except SchemaViolationError as exc:
                raise ProviderOutputError(problem=str(exc)) from exc
        return entries

    def _add(self, entries: Entries, dns: dict, kind_name: str, obj: object) -> None:
        kind = KINDS[kind_name]
        if not isinstance(obj, dict) or not isinstance(obj.get("ID"), str) or not obj["ID"]:
            raise ProviderOutputError(problem=f"{kind_name} object without a string ID")
        ident = obj["ID"]
        associations = obj.get("Associations") or {}
        if not isinstance(associations, dict):
            raise ProviderOutputError(problem=f"{kind_name} {ident}: Associations not an object")
        if kind.parent is None:
            parent_dn = group_dn(self.site)
        else:
            parent_ids = associations.get(kind.parent) or []
            parent_dn = next(
                (dns[(kind.parent, p)] for p in parent_ids if (kind.parent, p) in dns), None
            )
            if parent_dn is None:
                raise ProviderOutputError(
                    problem=f"{kind_name} {ident}: no known {kind.parent} in its Associations"
                )
            if kind_name == "CloudComputingVirtualAccelerator":
                # Accelerators sit next to their instance types, under the manager.
                parent_dn = parent_dn.split(",", 1)[1]
        dn = f"{kind.id_attr}={ldap.dn.escape_dn_chars(ident)},{parent_dn}"
        attrs = self._attributes(kind_name, kind, obj)
        keys = self._foreign_keys(kind_name, kind, ident, associations)
        if (kind_name, ident) in dns:
            self._merge(entries[dn], attrs, keys, kind_name, ident)
            return
        attrs.update(keys)
        entries[dn] = attrs
        dns[(kind_name, ident)] = dn

    def _attributes(self, kind_name: str, kind: Kind, obj: dict) -> Entry:
        attrs: Entry = {
            "objectClass": [oc.encode() for oc in kind.object_classes],
            kind.id_attr: [obj["ID"].encode()],
        }
        values = dict(kind.defaults) | {k: v for k, v in obj.items() if k not in SKIP}
        for key, value in values.items():
            encoded = _encode(key, value)
            if not encoded:
                continue
            name = self._attribute_for(kind_name, key)
            if name is None:
                raise ProviderOutputError(problem=f"{kind_name} {obj['ID']}: unknown field {key}")
            attrs[name] = encoded
        return attrs

    def _foreign_keys(self, kind_name: str, kind: Kind, ident: str, associations: dict) -> Entry:
        keys: Entry = {}
        for target, ids in associations.items():
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise ProviderOutputError(
                    problem=f"{kind_name} {ident}: association {target} is not a list of IDs"
                )
            name = self._foreign_key_for(kind_name, target)
            if name is None:
                raise ProviderOutputError(
                    problem=f"{kind_name} {ident}: no foreign key for association {target}"
                )
            unique = list(dict.fromkeys(i.encode() for i in ids if i))
            if unique:
                keys[name] = unique
        return keys

    def _foreign_key_for(self, kind_name: str, target: str) -> str | None:
        """The foreign-key attribute of an association (cached: the same few per kind)."""
        cache_key = (kind_name, "\0" + target)
        if cache_key not in self._names:
            target = ASSOCIATION_ALIASES.get(target, target)
            candidates = [f"{target}ForeignKey"]
            if target.startswith("CloudComputing"):
                candidates.append(f"{target.removeprefix('CloudComputing')}ForeignKey")
            self._names[cache_key] = next(
                (n for c in candidates if (n := self._attribute_for(kind_name, c))), None
            )
        return self._names[cache_key]

    def _attribute_for(self, kind_name: str, key: str) -> str | None:
        """The most specific ``GLUE2<class><key>`` attribute of this kind, if any."""
        if (kind_name, key) not in self._names:
            chain = [
                c.name for oc in KINDS[kind_name].object_classes for c in self.schema.chain(oc)
            ]
            self._names[(kind_name, key)] = next(
                (
                    attr.name
                    for prefix in chain
                    if (attr := self.schema.attributes.get(f"{prefix}{key}".lower()))
                ),
                None,
            )
        return self._names[(kind_name, key)]

    @staticmethod
    def _merge(existing: Entry, attrs: Entry, keys: Entry, kind_name: str, ident: str) -> None:
        """Fold a repeated object (same ID, next share) into the first one."""
        for name, values in attrs.items():
            if existing.get(name) != values:
                raise ProviderOutputError(
                    problem=f"{kind_name} {ident} repeats with a different {name}"
                )
        for name, values in keys.items():
            merged = existing.setdefault(name, [])
            merged.extend(v for v in values if v not in merged)


def _encode(key: str, value: object) -> list[bytes]:
    """JSON value -> LDAP values (lists are multi-valued, dicts key=value)."""
    if type(value) is str:  # the common case first: most fields are strings
        return [value.encode()] if value else []
    if value is None or value == "" or value == [] or value == {}:
        return []
    if key == "OtherInfo" and isinstance(value, dict):
        return [
            f"{k}={v if isinstance(v, str) else json.dumps(v, sort_keys=True)}".encode()
            for k, v in value.items()
        ]
    if isinstance(value, list):
        return [v for item in value for v in _encode(key, item)]
    if isinstance(value, bool):
        return [b"TRUE" if value else b"FALSE"]
    if isinstance(value, dict):
        return [json.dumps(value, sort_keys=True).encode()]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return [str(value).encode()]
