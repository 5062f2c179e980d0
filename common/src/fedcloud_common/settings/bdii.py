"""The information system's settings: what the render step writes for the
resource and the site BDII (``bdii/resource.json``, ``bdii/site.json``) and
what ``fedcloud-bdii`` loads. An operator running a BDII on its own may
write the same keys as TOML.

One model serves both roles: a resource BDII runs cloud-info-provider
(``endpoint``, ``vos``, ``openstack``, ``provider*``); a site BDII reads
resource BDIIs (``resource_urls``) and publishes the site itself
(``admin_domain``, ``public_address``). The value types (country code, email
address, host name) live here so that appliance.yaml's ``site`` section
validates with the very same rules: what the appliance accepts, the BDII
publishes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, Protocol

from pydantic import AfterValidator, BeforeValidator, Field, HttpUrl, model_validator

from fedcloud_common.model import Model
from fedcloud_common.openstack import Credentials

# ISO 3166-1 alpha-2, the officially assigned codes (as the tz database's
# iso3166.tab lists them, ISO/TC 46 N1108 of 2023-04-05).
_ISO_3166_ALPHA2 = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
    BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM
    DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS
    GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN
    KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ
    MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
    PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
    SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI
    VN VU WF WS YE YT ZA ZM ZW
"""
ISO_3166_ALPHA2 = frozenset(_ISO_3166_ALPHA2.split())
# Reserved codes people write for a country that has another one.
_COUNTRY_HINTS = {"UK": "write 'GB' for the United Kingdom", "EL": "write 'GR' for Greece"}

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*\.?$")
_EMAIL = re.compile(rf"^[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]+@{_LABEL}(?:\.{_LABEL})+$")


def _not_a_yaml_boolean(value: object) -> object:
    """YAML 1.1 reads a bare ``NO`` (Norway) as false: say so rather than "not a string"."""
    if isinstance(value, bool):
        raise ValueError(
            f"{value!r} is not a country code; YAML reads a bare NO as false: "
            "quote the code, e.g. 'NO' for Norway"
        )
    return value


def _country_code(value: str) -> str:
    code = value.upper()
    if code in ISO_3166_ALPHA2:
        return code
    fix = _COUNTRY_HINTS.get(code, "write its two letters, e.g. 'NL' for the Netherlands")
    raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code; {fix}")


def _email(value: str) -> str:
    if _EMAIL.match(value) and len(value) <= 254:
        return value
    raise ValueError(
        f"{value!r} is not an email address; write it as name@domain, "
        "e.g. 'cloud-admin@example.org'"
    )


def _hostname(value: str) -> str:
    if _HOSTNAME.match(value) and len(value) <= 253:
        return value.rstrip(".")
    raise ValueError(
        f"{value!r} is not a host name; write the name alone (no scheme, port or path), "
        "e.g. 'cloud.example.org'"
    )


CountryCode = Annotated[str, BeforeValidator(_not_a_yaml_boolean), AfterValidator(_country_code)]
Email = Annotated[str, AfterValidator(_email)]
Hostname = Annotated[str, AfterValidator(_hostname)]
Port = Annotated[int, Field(ge=1, le=65535)]
# GLUE 2's ContactType values (GFD.147, ContactType_t).
ContactType = Literal["general", "security", "sysadmin", "usersupport"]

BDII_PORT = 2170


class AdminDomain(Model):
    """The site as the site BDII describes it: GLUE 2 AdminDomain, Location, Contacts."""

    description: str | None = Field(
        None, min_length=1, description="a sentence about the site (GLUE2DomainDescription)"
    )
    www: HttpUrl | None = Field(None, description="the site's web page (GLUE2DomainWWW)")
    country: CountryCode | None = Field(
        None,
        description="ISO 3166-1 alpha-2 code of the site's country, published as the "
        "GLUE2LocationCountry of the site's Location; none: no Location",
    )
    contacts: dict[ContactType, Email] = Field(
        {},
        description="email address per GLUE 2 contact type (general, security, sysadmin, "
        "usersupport), each published as a GLUE2Contact with a mailto: detail",
    )


class PublicAddress(Model):
    """Where the world reaches the site BDII (not where slapd listens in its container)."""

    host: Hostname = Field(description="public host name of the site BDII")
    port: Port = Field(BDII_PORT, description="public port of the site BDII")


class ObjectStoreSettings(Model):
    """Where the resource BDII uploads its GLUE 2.1 JSON (fedcloud_bdii.objectstore)."""

    kind: Literal["swift", "s3"] = Field(
        "swift",
        description="swift (python-swiftclient, Keystone credentials) or s3 (any "
        "S3-compatible store: endpoint_url, access_key_id, secret_access_key_file)",
    )
    container: str = Field(
        min_length=1,
        description="Swift container the document goes to (EGI's operations use one "
        "container for every site's document; cloud-info-api lists it)",
    )
    object_name: str = Field(
        "{site}/cloud-info.json",
        min_length=1,
        description="object name in the container; {site} is the site's GOCDB name "
        "(EGI's layout: <site>/cloud-info.json)",
    )
    storage_url: HttpUrl | None = Field(
        None,
        description="Swift account URL (…/v1/AUTH_<project id>); none: the object-store "
        "endpoint in the credentials' Keystone catalog",
    )
    openstack: Credentials | None = Field(
        None, description="Keystone credentials for the store; none: the BDII's own"
    )
    public_read: bool = Field(
        True,
        description="a container the BDII creates is readable and listable by anyone, "
        "as cloud-info-api reads it without credentials",
    )
    endpoint_url: HttpUrl | None = Field(None, description="s3: the store's S3 endpoint")
    access_key_id: str | None = Field(None, min_length=1, description="s3: the access key")
    secret_access_key_file: Path | None = Field(
        None, description="s3: the file holding the access key's secret"
    )
    region: str = Field("us-east-1", min_length=1, description="s3: the region to sign for")
    retries: int = Field(1, ge=0, le=10, description="retries of a failed request")

    @model_validator(mode="after")
    def _keys_of_its_kind(self) -> ObjectStoreSettings:
        if problem := object_store_problem(self):
            raise ValueError(problem)
        return self


class _StoreKeys(Protocol):
    """The keys of an object store, in appliance.yaml and in the settings alike."""

    @property
    def kind(self) -> str: ...
    @property
    def storage_url(self) -> object: ...
    @property
    def openstack(self) -> object: ...


def object_store_problem(store: _StoreKeys) -> str | None:
    """What is wrong with an object store's keys for its kind (shared with appliance.yaml)."""
    s3_keys = ("endpoint_url", "access_key_id", "secret_access_key_file")
    if store.kind == "s3":
        missing = [key for key in s3_keys if getattr(store, key) is None]
        if missing:
            return f"an s3 store also needs: {', '.join(missing)}"
        if store.storage_url or store.openstack:
            return "storage_url and openstack are for kind swift; drop them for s3"
        return None
    given = [key for key in s3_keys if getattr(store, key) is not None]
    if given:
        return f"{', '.join(given)} are for kind s3; set kind: s3 or drop them"
    return None


class BdiiSettings(Model):
    """Everything ``fedcloud-bdii`` reads, in either role."""

    site: str = Field(min_length=1, description="the site's name exactly as in GOCDB")
    endpoint: str = Field(
        "", description="resource BDII: the cloud's Keystone URL as registered in GOCDB"
    )
    vos: dict[str, str] = Field(
        {},
        description="resource BDII: VO -> project (name or id; names are resolved among "
        "the projects of the appliance's user) published as the VO's share",
    )
    delete_delay: float = Field(
        3600.0, ge=0, description="seconds a vanished entry stays published"
    )
    state_dir: Path = Field(
        Path("/var/lib/fedcloud-bdii"),
        description="slapd's database and socket, pending deletions and status.json",
    )
    port: Port = Field(
        BDII_PORT, description="the port slapd listens on (inside the container: 2170)"
    )
    interval: float = Field(120.0, gt=0, description="seconds between cycles when serving")
    provider: str = Field(
        "cloud-info-provider-service", description="resource BDII: the provider command"
    )
    provider_args: list[str] = Field(
        [],
        description="resource BDII: extra provider arguments (e.g. --os-cloud NAME when "
        "openstack is not given)",
    )
    provider_timeout: float = Field(
        600.0, gt=0, description="resource BDII: seconds one provider run may take"
    )
    openstack: Credentials | None = Field(
        None,
        description="resource BDII: credentials handed to cloud-info-provider as OS_* "
        "variables; none: provider_args or the environment say how to log in",
    )
    provider_environment: dict[str, str] = Field(
        {},
        description="resource BDII: extra variables for cloud-info-provider alone (the "
        "proxy and CA bundle through which it reaches GOCDB)",
    )
    resource_urls: list[str] = Field(
        [], description="site BDII: LDAP URLs of the resource BDIIs it aggregates"
    )
    admin_domain: AdminDomain = Field(
        AdminDomain(),
        description="site BDII: what it publishes about the site (AdminDomain, Location, Contacts)",
    )
    object_store: ObjectStoreSettings | None = Field(
        None,
        description="resource BDII: also upload the published GLUE 2.1 JSON (with its "
        "probed health) to Swift, where EGI's cloud-info-api reads it; none: LDAP only",
    )
    public_address: PublicAddress | None = Field(
        None,
        description="site BDII: its public host and port, published as its own GLUE 2 "
        "service and endpoint (ldap://host:port/GLUE2DomainID=<site>,o=glue); none: "
        "not published",
    )
