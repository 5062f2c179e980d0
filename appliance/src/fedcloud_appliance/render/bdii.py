"""The information system's settings: the resource and the site BDII.

Both slapds listen on 2170 inside their containers (the site BDII reads the
resource BDII there); ``bdii.port`` is where the host publishes the site
BDII, so it goes into the address the site BDII publishes for itself, never
into the port slapd listens on.
"""

from __future__ import annotations

from pathlib import Path

from fedcloud_appliance.config import ApplianceConfig, Site
from fedcloud_appliance.render.stage import Stage, credentials
from fedcloud_common.settings.bdii import (
    BDII_PORT,
    AdminDomain,
    BdiiSettings,
    ContactType,
    ObjectStoreSettings,
    PublicAddress,
)

# How often the BDII services refresh on their own, between the supervisor's
# scheduled publish runs (so `systemctl start bdii` alone keeps data fresh).
RESOURCE_REFRESH_S = 1800
SITE_REFRESH_S = 120
RESOURCE_BDII_URL = f"ldap://resource-bdii:{BDII_PORT}"


def bdii(config: ApplianceConfig, stage: Stage) -> dict[str, BdiiSettings]:
    """``resource`` and ``site`` settings (written as ``bdii/<role>.json``)."""
    auth = config.openstack_for("bdii")
    delay = config.bdii.delete_delay.total_seconds()
    # For cloud-info-provider's GOCDB query (it honours only these).
    provider_environment = config.outbound.environment()
    if ca_bundle := stage(config.outbound.ca_bundle):
        provider_environment["REQUESTS_CA_BUNDLE"] = ca_bundle
    return {
        "resource": BdiiSettings(
            site=config.site.name,
            port=BDII_PORT,
            delete_delay=delay,
            # cloud-info-provider publishes Keystone's URL as the endpoint.
            endpoint=str(auth.auth_url or ""),
            vos=config.bdii.projects(),
            openstack=credentials(auth, stage),
            interval=RESOURCE_REFRESH_S,
            provider_environment=provider_environment,
            object_store=object_store(config, stage),
        ),
        "site": BdiiSettings(
            site=config.site.name,
            port=BDII_PORT,
            delete_delay=delay,
            resource_urls=[RESOURCE_BDII_URL],
            interval=SITE_REFRESH_S,
            admin_domain=admin_domain(config.site),
            public_address=PublicAddress(host=config.site.hostname, port=config.bdii.port),
        ),
    }


def object_store(config: ApplianceConfig, stage: Stage) -> ObjectStoreSettings | None:
    """The resource BDII's object store, its credentials' files staged like the BDII's."""
    store = config.bdii.object_store
    if store is None:
        return None
    secret = stage(store.secret_access_key_file)
    return ObjectStoreSettings(
        kind=store.kind,
        container=store.container,
        object_name=store.object_name,
        storage_url=store.storage_url,
        openstack=credentials(store.openstack, stage) if store.openstack else None,
        public_read=store.public_read,
        endpoint_url=store.endpoint_url,
        access_key_id=store.access_key_id,
        secret_access_key_file=Path(secret) if secret else None,
        region=store.region,
    )


def admin_domain(site: Site) -> AdminDomain:
    """The site section as GLUE 2 sees it: operations mail is the general contact."""
    contacts: dict[ContactType, str] = {}
    if site.contacts:
        contacts["general"] = site.contacts.email
        if site.contacts.security_email:
            contacts["security"] = site.contacts.security_email
    return AdminDomain(
        description=site.description, www=site.www, country=site.country, contacts=contacts
    )
