"""The accounting jobs' settings (cASO extraction and the APEL sender).

Built as ``AccountingSettings``, the model the service loads, so a field
renamed on either side is a type error here. Secret files (the Keystone
password, the AMS token, the STOMP passcode) and the CA and server
certificates are staged for the service's user; the host certificate and
key are read at each run from ``/etc/grid-security``, which the sender job
mounts, so a renewed certificate needs no render.
"""

from __future__ import annotations

from pathlib import Path

from fedcloud_appliance.config import ApplianceConfig
from fedcloud_appliance.render.casoconf import read_caso_conf
from fedcloud_appliance.render.stage import Stage, credentials
from fedcloud_common.settings.accounting import AccountingSettings, ExtractSettings, SendSettings


def accounting(config: ApplianceConfig, stage: Stage) -> AccountingSettings:
    caso, sender = config.accounting.caso, config.accounting.sender
    assert caso.start_date is not None  # required while accounting is enabled

    def staged(path: Path | None) -> Path | None:
        where = stage(path)
        return None if where is None else Path(where)

    extract: dict[str, object] = {
        "projects": caso.projects,
        "project_tag": caso.project_tag,
        "vo_property": caso.vo_property,
        "record_types": caso.record_types,
    }
    if caso.conf_file is not None:
        # what the site's own caso.conf says, where appliance.yaml is silent
        given = caso.model_fields_set
        adopted = read_caso_conf(caso.conf_file, config.site.name)
        extract |= {k: v for k, v in adopted.items() if k not in given or k == "caso_sections"}
    return AccountingSettings(
        extract=ExtractSettings.model_validate(
            {
                "site_name": config.site.name,
                "openstack": credentials(config.openstack_for("accounting"), stage),
                "start_date": caso.start_date,
                **extract,
            }
        ),
        send=SendSettings(
            protocol=sender.protocol,
            host=sender.host,
            port=sender.port,
            authx509_port=sender.authx509_port,
            ams_project=sender.ams_project,
            destination=sender.destination,
            max_message_bytes=sender.max_message_bytes,
            token_file=staged(sender.token_file),
            stomp_ssl=sender.stomp_ssl,
            stomp_vhost=sender.stomp_vhost,
            stomp_username=sender.stomp_username,
            stomp_password_file=staged(sender.stomp_password_file),
            cert=sender.cert,
            key=sender.key,
            ca_bundle=staged(sender.ca_bundle or config.outbound.ca_bundle),
            server_cert=staged(sender.server_cert),
            environment=config.outbound.environment(),
        ),
    )
