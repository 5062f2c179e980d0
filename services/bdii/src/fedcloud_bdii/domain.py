"""What the site BDII publishes about the site itself, beside its resource BDIIs' data.

cloud-info-provider describes the cloud; who runs it, where and how to reach
them is the site's to say. From the settings' ``admin_domain`` and
``public_address`` this builds, under ``GLUE2DomainID=<site>,o=glue``:

- the AdminDomain entry, with its description and web page;
- a ``GLUE2Location`` with the country;
- one ``GLUE2Contact`` per contact type, its detail a ``mailto:`` URL;
- the site BDII's own ``GLUE2Service`` (type ``bdii_site``) and its
  ``GLUE2Endpoint``, whose URL is where the world reads the site's data.

IDs follow the EGI site BDII's (``location.<site>``, ``<type>.contact.<site>``),
and every entry names the domain in its ``...DomainForeignKey`` (Location,
Contact) or ``GLUE2ServiceAdminDomainForeignKey``.
"""

from __future__ import annotations

import ldap.dn

from fedcloud_bdii.convert import Entries, Entry, domain_dn, skeleton
from fedcloud_common.settings.bdii import BdiiSettings

SITE_BDII_TYPE = "bdii_site"


def site_entries(config: BdiiSettings) -> Entries:
    """The domain with its details, its Location, Contacts and the site BDII's endpoint."""
    site = config.site
    domain = domain_dn(site)
    entries = skeleton(site)
    about = config.admin_domain
    if about.description:
        entries[domain]["GLUE2DomainDescription"] = [about.description.encode()]
    if about.www:
        entries[domain]["GLUE2DomainWWW"] = [str(about.www).encode()]
    if about.country:
        ident = f"location.{site}"
        entries[_dn("GLUE2LocationID", ident, domain)] = _entry(
            "GLUE2Location",
            GLUE2LocationID=ident,
            GLUE2LocationCountry=about.country,
            GLUE2LocationDomainForeignKey=site,
        )
    for kind, email in sorted(about.contacts.items()):
        ident = f"{kind}.contact.{site}"
        entries[_dn("GLUE2ContactID", ident, domain)] = _entry(
            "GLUE2Contact",
            GLUE2ContactID=ident,
            GLUE2ContactDetail=f"mailto:{email}",
            GLUE2ContactType=kind,
            GLUE2ContactDomainForeignKey=site,
        )
    if config.public_address:
        entries.update(_site_bdii(site, config.public_address.host, config.public_address.port))
    return entries


def _site_bdii(site: str, host: str, port: int) -> Entries:
    """The site BDII as a GLUE 2 service with one LDAP endpoint, as EGI's top BDII finds it."""
    service_id = f"{host}_{SITE_BDII_TYPE}"
    service = _dn("GLUE2ServiceID", service_id, domain_dn(site))
    endpoint_id = f"{service_id}_endpoint"
    return {
        service: _entry(
            "GLUE2Service",
            GLUE2ServiceID=service_id,
            GLUE2EntityName=f"Site BDII of {site}",
            GLUE2ServiceType=SITE_BDII_TYPE,
            GLUE2ServiceQualityLevel="production",
            GLUE2ServiceCapability=["information.discovery", "information.model"],
            GLUE2ServiceAdminDomainForeignKey=site,
        ),
        _dn("GLUE2EndpointID", endpoint_id, service): _entry(
            "GLUE2Endpoint",
            GLUE2EndpointID=endpoint_id,
            GLUE2EndpointURL=f"ldap://{host}:{port}/{domain_dn(site)}",
            GLUE2EndpointInterfaceName=SITE_BDII_TYPE,
            GLUE2EndpointTechnology="ldap",
            GLUE2EndpointQualityLevel="production",
            # It is this very BDII: whoever reads the entry reads a BDII that answers.
            GLUE2EndpointHealthState="ok",
            GLUE2EndpointServingState="production",
            GLUE2EndpointServiceForeignKey=service_id,
        ),
    }


def _dn(attribute: str, value: str, parent: str) -> str:
    return f"{attribute}={ldap.dn.escape_dn_chars(value)},{parent}"


def _entry(object_class: str, **attributes: str | list[str]) -> Entry:
    entry: Entry = {"objectClass": [object_class.encode()]}
    for name, value in attributes.items():
        values = value if isinstance(value, list) else [value]
        entry[name] = [v.encode() for v in values]
    return entry
