"""The GLUE 2.1 cloud schema for OpenLDAP, as data.

Debian's glue-schema (2.0.11) stops at GLUE 2.0 and has no cloud classes, so
slapd rejects every GLUE2CloudComputing* entry. This module is the single
source of the schema we ship: ``render()`` writes the slapd ``.schema`` file
(``glue21.schema`` in this package, checked by a test to match), and
``Schema.validate`` checks entries against the same definitions before the
updater writes anything.

OIDs. Everything sits under the GLUE 2 LDAP arc ``1.3.6.1.4.1.6757.100.1.1``
(OGF's enterprise number 6757, GLUE working group). The GLUE 2.0 core classes
we need keep the names and OIDs of the GLUE 2.0 LDAP rendering (classes
``ARC.<n>``, their attributes ``ARC.<n>.<k>``; n = 1..36), so GLUE 2.0
clients read them unchanged. The GLUE 2.1 cloud classes have no published LDAP
rendering; this project numbers them ``ARC.100`` onwards (clear of 1..36) with
the same class/attribute pattern. They are not registered with OGF: if OGF
publishes a 2.1 LDAP rendering, renumber here. Because the core names are the
same, load this file *instead of* GLUE20.schema, never next to it.

Values. GLUE 2.0 published every attribute as a Directory String; we keep that
for the core, and give cloud counts and sizes INTEGER syntax so that filters
such as ``(GLUE2CloudComputingInstanceTypeRAM>=4096)`` work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import ldap.dn

from fedcloud_bdii.errors import BdiiError

ARC = "1.3.6.1.4.1.6757.100.1.1"

STRING = "1.3.6.1.4.1.1466.115.121.1.15"
INTEGER = "1.3.6.1.4.1.1466.115.121.1.27"


@dataclass(frozen=True)
class Attribute:
    name: str
    oid: str
    integer: bool = False
    single: bool = True


@dataclass(frozen=True)
class ObjectClass:
    name: str
    oid: str
    sup: str | None
    kind: str  # ABSTRACT, STRUCTURAL
    must: tuple[str, ...] = ()
    may: tuple[str, ...] = ()


@dataclass
class _Builder:
    """Collects classes and their attributes in declaration order."""

    attributes: dict[str, Attribute] = field(default_factory=dict)
    classes: dict[str, ObjectClass] = field(default_factory=dict)

    def cls(
        self,
        number: int,
        name: str,
        sup: str | None,
        attrs: list[tuple[int, str, str]],
        kind: str = "STRUCTURAL",
    ) -> None:
        """Declare class ``GLUE2<name>`` = ARC.number and its own attributes.

        Each attribute is (k, suffix, flags): OID ARC.number.k, name
        ``GLUE2<name><suffix>``; flags: "m" must, "i" integer, "*" multi-valued.
        """
        must, may = [], []
        for k, suffix, flags in attrs:
            attr = Attribute(
                name=f"GLUE2{name}{suffix}",
                oid=f"{ARC}.{number}.{k}",
                integer="i" in flags,
                single="*" not in flags,
            )
            self.attributes[attr.name.lower()] = attr
            (must if "m" in flags else may).append(attr.name)
        self.classes[f"glue2{name}".lower()] = ObjectClass(
            name=f"GLUE2{name}",
            oid=f"{ARC}.{number}",
            sup=sup,
            kind=kind,
            must=tuple(must),
            may=tuple(may),
        )


def _declare() -> _Builder:
    b = _Builder()
    # --- GLUE 2.0 core (names and OIDs of the GLUE 2.0 LDAP rendering) ---
    b.cls(
        1,
        "Entity",
        None,
        [(2, "Name", ""), (3, "OtherInfo", "*"), (4, "CreationTime", ""), (5, "Validity", "")],
        kind="ABSTRACT",
    )
    b.cls(36, "Group", None, [(1, "ID", "m")])
    # The site's own Location and Contacts (published by the site BDII, domain.py).
    b.cls(
        3,
        "Location",
        "GLUE2Entity",
        [
            (1, "ID", "m"),
            (2, "Address", ""),
            (3, "Place", ""),
            (4, "Country", ""),
            (5, "PostCode", ""),
            (6, "Latitude", ""),
            (7, "Longitude", ""),
            (8, "ServiceForeignKey", "*"),
            (9, "DomainForeignKey", "*"),
        ],
    )
    b.cls(
        4,
        "Contact",
        "GLUE2Entity",
        [
            (1, "ID", "m"),
            (2, "Detail", "m"),
            (3, "Type", "m"),
            (4, "ServiceForeignKey", "*"),
            (5, "DomainForeignKey", "*"),
        ],
    )
    b.cls(5, "Domain", "GLUE2Entity", [(1, "ID", "m"), (2, "Description", ""), (3, "WWW", "*")])
    b.cls(6, "AdminDomain", "GLUE2Domain", [(1, "Distributed", ""), (2, "Owner", "*")])
    b.cls(
        8,
        "Service",
        "GLUE2Entity",
        [
            (1, "ID", "m"),
            (2, "Capability", "*"),
            (3, "Type", "m"),
            (4, "QualityLevel", "m"),
            (5, "StatusInfo", "*"),
            (6, "Complexity", ""),
            (7, "AdminDomainForeignKey", "m*"),
            (8, "ServiceForeignKey", "*"),
        ],
    )
    b.cls(
        9,
        "Endpoint",
        "GLUE2Entity",
        [
            (1, "ID", "m"),
            (2, "URL", "m"),
            (3, "Capability", "*"),
            (4, "Technology", ""),
            (5, "InterfaceName", "m"),
            (6, "InterfaceVersion", "*"),
            (7, "InterfaceExtension", "*"),
            (8, "WSDL", "*"),
            (9, "SupportedProfile", "*"),
            (10, "Semantics", "*"),
            (11, "Implementor", ""),
            (12, "ImplementationName", ""),
            (13, "ImplementationVersion", ""),
            (14, "QualityLevel", "m"),
            (15, "HealthState", "m"),
            (16, "HealthStateInfo", ""),
            (17, "ServingState", "m"),
            (18, "StartTime", ""),
            (19, "IssuerCA", ""),
            (20, "TrustedCA", "*"),
            (21, "DowntimeAnnounce", ""),
            (22, "DowntimeStart", ""),
            (23, "DowntimeEnd", ""),
            (24, "DowntimeInfo", ""),
            (25, "ServiceForeignKey", "m"),
        ],
    )
    b.cls(
        10,
        "Share",
        "GLUE2Entity",
        [
            (1, "ID", "m"),
            (2, "Description", ""),
            (3, "EndpointForeignKey", "*"),
            (4, "ResourceForeignKey", "*"),
            (5, "ServiceForeignKey", "m"),
        ],
    )
    b.cls(
        11,
        "Manager",
        "GLUE2Entity",
        [
            (1, "ID", "m"),
            (2, "ProductName", "m"),
            (3, "ProductVersion", ""),
            (4, "ServiceForeignKey", "m"),
        ],
    )
    b.cls(
        14,
        "Policy",
        "GLUE2Entity",
        [(1, "ID", "m"), (2, "Scheme", "m"), (3, "Rule", "m*"), (4, "UserDomainForeignKey", "*")],
    )
    b.cls(15, "AccessPolicy", "GLUE2Policy", [(1, "EndpointForeignKey", "m*")])
    b.cls(16, "MappingPolicy", "GLUE2Policy", [(1, "ShareForeignKey", "m*")])

    # --- GLUE 2.1 cloud classes (numbered by this project, see module doc) ---
    b.cls(
        100,
        "CloudComputingService",
        "GLUE2Service",
        [
            (1, "TotalVM", "i"),
            (2, "RunningVM", "i"),
            (3, "SuspendedVM", "i"),
            (4, "HaltedVM", "i"),
            (5, "ServiceAUP", ""),
        ],
    )
    b.cls(
        101,
        "CloudComputingManager",
        "GLUE2Manager",
        [
            (1, "HypervisorName", ""),
            (2, "HypervisorVersion", ""),
            (3, "TotalCPUs", "i"),
            (4, "TotalRAM", "i"),
            (5, "InstanceMinCPU", "i"),
            (6, "InstanceMaxCPU", "i"),
            (7, "InstanceMinRAM", "i"),
            (8, "InstanceMaxRAM", "i"),
            (9, "Failover", ""),
            (10, "LiveMigration", ""),
            (11, "VMBackupRestore", ""),
        ],
    )
    b.cls(102, "CloudComputingEndpoint", "GLUE2Endpoint", [(1, "Authentication", "*")])
    b.cls(
        103,
        "CloudComputingShare",
        "GLUE2Share",
        [
            (1, "InstanceMaxCPU", "i"),
            (2, "InstanceMaxRAM", "i"),
            (3, "SLA", ""),
            (4, "TotalVM", "i"),
            (5, "RunningVM", "i"),
            (6, "SuspendedVM", "i"),
            (7, "HaltedVM", "i"),
            (8, "MaxVM", "i"),
            (9, "NetworkInfo", "*"),
            (10, "DefaultNetworkType", ""),
            (11, "PublicNetworkName", ""),
            (12, "ProjectID", ""),
        ],
    )
    b.cls(
        104,
        "CloudComputingImage",
        "GLUE2Entity",
        [
            (1, "ID", "m"),
            (2, "MarketplaceURL", ""),
            (3, "OSPlatform", ""),
            (4, "OSFamily", ""),
            (5, "OSName", ""),
            (6, "OSVersion", ""),
            (7, "Version", ""),
            (8, "MinCPU", "i"),
            (9, "RecommendedCPU", "i"),
            (10, "MinRAM", "i"),
            (11, "RecommendedRAM", "i"),
            (12, "Description", ""),
            (13, "DiskSize", "i"),
            (14, "AccessInfo", ""),
            (15, "ShareForeignKey", "*"),
            (16, "CloudComputingEndpointForeignKey", "*"),
            (17, "CloudComputingManagerForeignKey", "*"),
        ],
    )
    b.cls(
        105,
        "CloudComputingInstanceType",
        "GLUE2Entity",
        [
            (1, "ID", "m"),
            (2, "Platform", ""),
            (3, "CPU", "i"),
            (4, "RAM", "i"),
            (5, "Disk", "i"),
            (6, "EphemeralStorage", "i"),
            (7, "NetworkIn", ""),
            (8, "NetworkOut", ""),
            (9, "NetworkInfo", "*"),
            (10, "ShareForeignKey", "*"),
            (11, "CloudComputingEndpointForeignKey", "*"),
            (12, "CloudComputingManagerForeignKey", "*"),
            (13, "CloudComputingVirtualAcceleratorForeignKey", "*"),
        ],
    )
    b.cls(
        106,
        "CloudComputingVirtualAccelerator",
        "GLUE2Entity",
        [
            (1, "ID", "m"),
            (2, "Type", ""),
            (3, "Number", "i"),
            (4, "Memory", "i"),
            (5, "Vendor", ""),
            (6, "Model", ""),
            (7, "Version", ""),
            (8, "ClockSpeed", "i"),
            (9, "ComputeCapability", "*"),
            (10, "CloudComputingInstanceTypeForeignKey", "*"),
        ],
    )
    return b


class SchemaViolationError(BdiiError):
    """An entry that slapd would reject (or that would lose data); the message names it."""


class Schema:
    """The shipped schema: rendering for slapd and validation of entries."""

    def __init__(self) -> None:
        built = _declare()
        self.attributes = built.attributes
        self.classes = built.classes
        self._rule_cache: dict[tuple[str, ...], tuple[set[str], set[str]]] = {}

    def chain(self, name: str) -> list[ObjectClass]:
        """The class and its superclasses, most specific first."""
        out = []
        cls: ObjectClass | None = self.classes[name.lower()]
        while cls is not None:
            out.append(cls)
            cls = self.classes[cls.sup.lower()] if cls.sup else None
        return out

    def allowed(self, object_classes: list[str]) -> tuple[set[str], set[str]]:
        """(must, may) attribute names, lower-cased, for these object classes."""
        must: set[str] = set()
        may: set[str] = set()
        for name in object_classes:
            for cls in self.chain(name):
                must.update(a.lower() for a in cls.must)
                may.update(a.lower() for a in cls.may)
        return must, may | must

    def _rules(self, ocs: tuple[str, ...]) -> tuple[set[str], set[str]]:
        """(must, may) for one objectClass combination, checked once and cached."""
        if ocs in self._rule_cache:
            return self._rule_cache[ocs]
        unknown = [oc for oc in ocs if oc.lower() not in self.classes]
        if not ocs or unknown:
            raise SchemaViolationError(f"unknown or missing objectClass {unknown or list(ocs)}")
        leaves = [oc.lower() for oc in ocs if self.classes[oc.lower()].kind == "STRUCTURAL"]
        chains = {leaf: {c.name.lower() for c in self.chain(leaf)} for leaf in leaves}
        if not any(set(leaves) <= chains[leaf] for leaf in leaves):
            raise SchemaViolationError(f"object classes {list(ocs)} are not one structural chain")
        self._rule_cache[ocs] = self.allowed(list(ocs))
        return self._rule_cache[ocs]

    def validate(
        self, dn: str, attrs: dict[str, list[bytes]], changed: set[str] | None = None
    ) -> None:
        """Raise SchemaViolationError unless slapd would accept this entry as is.

        ``changed`` (lower-case names): the entry is a modified copy of one
        slapd accepted, so only these attributes' values need checking; the
        classes and which attributes are present are always checked.
        """
        ocs = tuple(v.decode() for v in attrs.get("objectClass", []))
        try:
            must, may = self._rules(ocs)
        except SchemaViolationError as exc:
            raise SchemaViolationError(f"{dn}: {exc}") from None
        present = {name.lower() for name in attrs if name != "objectClass"}
        if missing := must - present:
            raise SchemaViolationError(f"{dn}: missing required {sorted(missing)}")
        if extra := present - may:
            raise SchemaViolationError(f"{dn}: attributes not allowed by {ocs}: {sorted(extra)}")
        for name, values in attrs.items():
            if name == "objectClass" or (changed is not None and name.lower() not in changed):
                continue
            attr = self.attributes[name.lower()]
            if not values or any(v == b"" for v in values):
                raise SchemaViolationError(f"{dn}: {name} has an empty value")
            if attr.single and len(values) > 1:
                raise SchemaViolationError(f"{dn}: {name} is single-valued, got {len(values)}")
            if len(set(values)) != len(values):
                raise SchemaViolationError(f"{dn}: {name} repeats a value")
            if attr.integer and not all(_is_integer(v) for v in values):
                raise SchemaViolationError(f"{dn}: {name} must be an integer, got {values!r}")
        lowered = {name.lower(): values for name, values in attrs.items()}
        for rdn_type, rdn_value, _ in ldap.dn.str2dn(dn)[0]:
            if rdn_value.encode() not in lowered.get(rdn_type.lower(), []):
                raise SchemaViolationError(f"{dn}: naming value {rdn_type} is not in the entry")

    def render(self) -> str:
        """The schema in slapd.conf syntax (``include`` it, or slaptest -> cn=config)."""
        lines = [
            "# GLUE 2.1 cloud schema for OpenLDAP, shipped by fedcloud-bdii.",
            "# Generated from fedcloud_bdii/schema.py (see its docstring for the OIDs).",
            "# Replaces GLUE20.schema: do not load both.",
            "",
        ]
        for attr in self.attributes.values():
            if attr.integer:
                rules = f"EQUALITY integerMatch ORDERING integerOrderingMatch SYNTAX {INTEGER}"
            else:
                rules = f"EQUALITY caseExactMatch SUBSTR caseExactSubstringsMatch SYNTAX {STRING}"
            single = " SINGLE-VALUE" if attr.single else ""
            lines.append(f"attributetype ( {attr.oid} NAME '{attr.name}'\n    {rules}{single} )")
        for cls in self.classes.values():
            parts = [f"objectclass ( {cls.oid} NAME '{cls.name}'"]
            if cls.sup:
                parts.append(f"SUP {cls.sup}")
            parts.append(cls.kind)
            if cls.must:
                parts.append(f"MUST ( {' $ '.join(cls.must)} )")
            if cls.may:
                parts.append(f"MAY ( {' $ '.join(cls.may)} )")
            lines.append("\n    ".join(parts) + " )")
        return "\n\n".join(lines) + "\n"


def _is_integer(value: bytes) -> bool:
    text = value.decode()
    return text.lstrip("-").isdigit() and text == str(int(text))


def schema_path() -> Path:
    """The shipped .schema file, as a path slapd can ``include``."""
    return Path(str(files("fedcloud_bdii") / "glue21.schema"))
