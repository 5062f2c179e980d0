"""caso.conf, written from the extract settings.

cASO reads oslo.config files; the appliance never asks the operator to write
one. Choices made here on purpose:

- no ``project_name`` or ``project_id`` under ``[keystone_auth]``, though
  the credentials carry one: cASO scopes every token itself (system scope
  for listing, project scope per project) and a configured project makes
  Keystone reject the request as double-scoped;
- ``vo_property`` always written: cASO's own default and its docs disagree;
- the lastrun files cASO keeps are ignored: the job passes an explicit
  window each run (see ``extract``), so they live in a scratch sub-directory.
"""

from __future__ import annotations

import configparser
import io
import math

from fedcloud_common.secrets import read_secret
from fedcloud_common.settings.accounting import Extractor, ExtractSettings, RecordType

NO_TAG = "fedcloud-appliance-explicit-projects-only"


def render(config: ExtractSettings, extractor: Extractor, record_types: list[RecordType]) -> str:
    """The caso.conf for one extractor's run (it holds the Keystone password).

    One extractor per run, so each record type's window is judged, and its
    watermark moved, on its own; the ssm messenger is told the types to
    write (its default leaves out none but energy, which it cannot write).
    """
    parser = configparser.ConfigParser(interpolation=None)
    ks = config.openstack
    assert ks.username and ks.password_file  # ExtractSettings refuses anything else
    default = {
        "site_name": config.site_name,
        "service_name": config.service_name or config.site_name,
        "projects": ",".join(config.projects),
        # cASO always adds the tagged projects (default tag "caso") to the
        # list; with no tag configured, name one that nothing carries.
        "caso_tag": config.project_tag or NO_TAG,
        "vo_property": config.vo_property,
        "extractor": extractor,
        "messengers": "ssm",
        "spooldir": str(config.state_dir / "caso"),
        "lock_path": str(config.state_dir / "caso"),
        "debug": "false",
        "use_stderr": "true",
    }
    if ks.region:
        default["region_name"] = ks.region
    parser["DEFAULT"] = default
    parser["ssm"] = {
        "output_path": str(config.spool_dir),
        "max_size": str(config.records_per_message),
    }
    parser["messenger_ssm"] = {"record_types": ",".join(record_types)}
    for section, options in config.caso_sections.items():  # from the site's own caso.conf
        parser[section] = options
    auth = {
        "auth_type": "password",
        "auth_url": str(ks.auth_url),
        "username": ks.username,
        "password": read_secret(ks.password_file).reveal(),
        "user_domain_name": ks.user_domain_name,
        "project_domain_name": ks.project_domain_name,
        # keystoneauth's timeout is whole seconds: round up, never to 0
        "timeout": str(math.ceil(ks.timeout_s)),
    }
    if ks.ca_bundle:
        auth["cafile"] = str(ks.ca_bundle)
    parser["keystone_auth"] = auth
    out = io.StringIO()
    parser.write(out)
    return out.getvalue()
