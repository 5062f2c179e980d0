"""The accounting jobs' settings (cASO extraction and the APEL sender)."""

from __future__ import annotations

from typing import Any

from fedcloud_appliance.config import ApplianceConfig
from fedcloud_appliance.render.stage import Stage


def accounting(config: ApplianceConfig, stage: Stage) -> dict[str, Any]:
    auth = config.openstack_for("accounting")
    caso, sender = config.accounting.caso, config.accounting.sender
    keystone = {
        "auth_url": str(auth.auth_url),
        "username": auth.username,
        "password_file": stage(auth.password_file),
        "user_domain_name": auth.user_domain_name,
        "project_domain_name": auth.project_domain_name,
        "region": auth.region,
        "ca_bundle": stage(auth.ca_bundle),
    }
    send = sender.model_dump(mode="json", exclude={"schedule"})
    send["token_file"] = stage(sender.token_file)
    send["ca_bundle"] = stage(sender.ca_bundle or config.outbound.ca_bundle)
    send["environment"] = config.outbound.environment()
    return {
        "extract": {
            "site_name": config.site.name,
            "keystone": {k: v for k, v in keystone.items() if v is not None},
            "projects": caso.projects,
            "project_tag": caso.project_tag,
            "vo_property": caso.vo_property,
            "extractors": caso.extractors,
            "start_date": caso.start_date.isoformat() if caso.start_date else None,
        },
        "send": {k: v for k, v in send.items() if v is not None},
    }
