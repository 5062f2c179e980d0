"""The information system's settings: the resource and the site BDII."""

from __future__ import annotations

from typing import Any

from fedcloud_appliance.config import ApplianceConfig
from fedcloud_appliance.render.stage import Stage, credentials

# How often the BDII services refresh on their own, between the supervisor's
# scheduled publish runs (so `systemctl start bdii` alone keeps data fresh).
RESOURCE_REFRESH_S = 1800
SITE_REFRESH_S = 120


def bdii(config: ApplianceConfig, stage: Stage) -> dict[str, Any]:
    auth = config.openstack_for("bdii")
    delay = config.bdii.delete_delay.total_seconds()
    common = {"site": config.site.name, "port": 2170, "delete_delay": delay}
    return {
        "resource": common
        | {
            # cloud-info-provider publishes Keystone's URL as the endpoint.
            "endpoint": str(auth.auth_url or ""),
            "vos": config.bdii.projects(),
            "openstack": credentials(auth, stage).model_dump(mode="json", exclude_none=True),
            "interval": RESOURCE_REFRESH_S,
            # For cloud-info-provider's GOCDB query (it honours only these).
            "provider_environment": config.outbound.environment()
            | (
                {"REQUESTS_CA_BUNDLE": stage(config.outbound.ca_bundle)}
                if config.outbound.ca_bundle
                else {}
            ),
        },
        "site": common
        | {
            "resource_urls": ["ldap://resource-bdii:2170"],
            "interval": SITE_REFRESH_S,
        },
    }
