"""HealthState from probes of the published endpoints, not a constant.

cloud-info-provider writes ``HealthState: ok`` whatever the cloud's state.
Before each publish the resource BDII asks the cloud itself, as a user
would: Keystone must issue a token for the appliance's credentials, and Nova
and Glance (found in that token's catalog) must answer an authenticated
list request. The verdict goes on every published CloudComputingEndpoint,
in LDAP (GLUE2EndpointHealthState/-Info) and in the GLUE 2.1 JSON:

- ``ok``: all three answer and authenticate;
- ``critical``: Keystone or Nova does not (no VM can be started);
- ``warning``: only Glance does not (running VMs are fine, images cannot
  be listed or uploaded).

``HealthStateInfo`` says which service failed and how, in one line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fedcloud_bdii.convert import Entries
from fedcloud_common.openstack import Credentials

# (service type in the catalog, name in HealthStateInfo, list request to make)
PROBES = (("compute", "Nova", "/flavors"), ("image", "Glance", "/images"))


@dataclass(frozen=True)
class Health:
    state: str  # GLUE 2 EndpointHealthState_t: ok, warning, critical
    info: str

    def key(self) -> bytes:
        return f"{self.state}\0{self.info}".encode()


def probe(credentials: Credentials) -> Health:
    """Ask Keystone for a token, then Nova and Glance for a one-item list."""
    try:
        conn = credentials.connect()
        conn.authorize()
    except Exception as exc:  # keystoneauth and SDK errors alike
        return Health("critical", f"Keystone does not authenticate: {_one_line(exc)}")
    failed = []
    for service_type, name, path in PROBES:
        problem = _ask(conn, service_type, path)
        if problem:
            failed.append((name, problem))
    if not failed:
        return Health("ok", "Keystone, Nova and Glance answer and authenticate")
    state = "warning" if [name for name, _ in failed] == ["Glance"] else "critical"
    return Health(state, "; ".join(f"{name} {problem}" for name, problem in failed))


def _ask(conn: Any, service_type: str, path: str) -> str | None:
    """None when the service answers an authenticated request, else why not."""
    try:
        proxy = getattr(conn, service_type)
        response = proxy.get(path, params={"limit": 1}, raise_exc=False)
    except Exception as exc:  # unreachable, timed out, not in the catalog
        return f"does not answer: {_one_line(exc)}"
    if response.status_code in (401, 403):
        return f"does not authenticate (HTTP {response.status_code})"
    if response.status_code >= 400:
        return f"answers HTTP {response.status_code}"
    return None


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


def on_entries(entries: Entries, health: Health) -> Entries:
    """Put the verdict on every cloud endpoint entry (LDAP)."""
    for attrs in entries.values():
        if b"GLUE2CloudComputingEndpoint" in attrs.get("objectClass", []):
            attrs["GLUE2EndpointHealthState"] = [health.state.encode()]
            attrs["GLUE2EndpointHealthStateInfo"] = [health.info.encode()]
    return entries


def on_document(document: bytes, health: Health) -> bytes:
    """Put the verdict on every CloudComputingEndpoint of the GLUE 2.1 JSON."""
    parsed = json.loads(document)
    for endpoint in parsed.get("CloudComputingEndpoint") or []:
        endpoint["HealthState"] = health.state
        endpoint["HealthStateInfo"] = health.info
    return json.dumps(parsed).encode()
