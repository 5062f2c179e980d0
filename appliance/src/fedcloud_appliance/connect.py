"""``appliance config check --connect``: try what the config names, say what works.

A file can be valid and still useless: a wrong password, a Keystone URL
behind a firewall, an AppDB token that expired. This logs in to Keystone
with each set of credentials the services will use (the Keystone v3 token
API, spoken directly: the supervisor's image carries no OpenStack SDK) and
fetches each image list, as the services would, through the configured
proxy and CAs. Every check ends in one line: what worked, or why not and
what to fix.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import requests

from fedcloud_appliance.config import ApplianceConfig, Credentials, ImageList
from fedcloud_common.errors import SecretFileError
from fedcloud_common.faults import explain
from fedcloud_common.secrets import read_secret

TIMEOUT_S = 15.0


@dataclasses.dataclass(frozen=True)
class Check:
    what: str  # the appliance.yaml key checked
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.what}: {self.detail}"


def check_all(config: ApplianceConfig) -> list[Check]:
    return [*_keystone_checks(config), *_list_checks(config)]


def _keystone_checks(config: ApplianceConfig) -> Iterator[Check]:
    sections: list[tuple[str, Credentials | None]] = [("openstack", config.openstack)]
    for name in ("images", "bdii", "accounting"):
        if getattr(config, name).enabled:
            sections.append((f"{name}.openstack", getattr(config, name).openstack))
    seen: set[Credentials] = set()
    for key, auth in sections:
        if auth is not None and auth not in seen:  # the same credentials: one login says it
            seen.add(auth)
            yield keystone(auth, key)


def keystone(auth: Credentials, key: str, timeout_s: float = TIMEOUT_S) -> Check:
    """Log in to Keystone (v3 token API) with ``auth``, as the services will."""
    if auth.cloud:
        return Check(key, True, f"clouds.yaml entry {auth.cloud!r}: not tried here (not checked)")
    try:
        body = _token_request(auth)
    except SecretFileError as error:
        return Check(key, False, str(error))
    url = f"{str(auth.auth_url).rstrip('/')}/auth/tokens"
    verify: bool | str = str(auth.ca_bundle) if auth.ca_bundle else True
    try:
        reply = requests.post(url, json=body, timeout=timeout_s, verify=verify)
    except requests.RequestException as error:
        return Check(key, False, f"{explain(error)} ({url})")
    if reply.status_code == 401:
        return Check(
            key,
            False,
            f"Keystone refused the credentials (401): check {key}.username, "
            f"{key}.password_file (or the application credential) and the project",
        )
    if reply.status_code != 201:
        return Check(key, False, f"Keystone answered HTTP {reply.status_code} at {url}")
    token = reply.json().get("token", {})
    project = (token.get("project") or {}).get("name", "?")
    user = (token.get("user") or {}).get("name", "?")
    regions = {
        endpoint.get("region")
        for service in token.get("catalog", [])
        for endpoint in service.get("endpoints", [])
    }
    if auth.region and auth.region not in regions:
        return Check(
            key,
            False,
            f"logged in as {user}, but the catalog has no region {auth.region!r} "
            f"(it has {', '.join(sorted(r for r in regions if r)) or 'none'}): fix {key}.region",
        )
    return Check(key, True, f"logged in to Keystone as {user} in project {project}")


def _token_request(auth: Credentials) -> dict[str, object]:
    if auth.application_credential_id:
        assert auth.application_credential_secret_file is not None
        secret = read_secret(auth.application_credential_secret_file).reveal()
        return {
            "auth": {
                "identity": {
                    "methods": ["application_credential"],
                    "application_credential": {
                        "id": auth.application_credential_id,
                        "secret": secret,
                    },
                }
            }
        }
    assert auth.password_file is not None
    password = read_secret(auth.password_file).reveal()
    project: dict[str, object] = (
        {"id": auth.project_id}
        if auth.project_id
        else {"name": auth.project_name, "domain": {"name": auth.project_domain_name}}
    )
    return {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": auth.username,
                        "domain": {"name": auth.user_domain_name},
                        "password": password,
                    }
                },
            },
            "scope": {"project": project},
        }
    }


def _list_checks(config: ApplianceConfig) -> Iterator[Check]:
    if not config.images.enabled:
        return
    proxies = {}
    if config.outbound.https_proxy:
        proxies = {"https": str(config.outbound.https_proxy).rstrip("/")}
    verify: bool | str = str(config.outbound.ca_bundle) if config.outbound.ca_bundle else True
    for index, image_list in enumerate(config.images.lists):
        if image_list.enabled:
            yield image_list_check(image_list, f"images.lists[{index}]", proxies, verify)


def image_list_check(
    image_list: ImageList,
    key: str,
    proxies: dict[str, str] | None = None,
    verify: bool | str = True,
    timeout_s: float = TIMEOUT_S,
) -> Check:
    """Fetch one list as image-sync does (signature checks are image-sync's own)."""
    what = f"{key} ({image_list.name})"
    auth = None
    if image_list.token_file:
        try:
            auth = (read_secret(Path(image_list.token_file)).reveal(), "x-oauth-basic")
        except SecretFileError as error:
            return Check(what, False, str(error))
    url = str(image_list.url)
    try:
        reply = requests.get(url, auth=auth, timeout=timeout_s, proxies=proxies, verify=verify)
    except requests.RequestException as error:
        return Check(what, False, f"{explain(error)} ({url})")
    if reply.status_code in (401, 403):
        return Check(
            what,
            False,
            f"the list server refused access (HTTP {reply.status_code}): check {key}.token_file",
        )
    if reply.status_code != 200:
        return Check(what, False, f"HTTP {reply.status_code} from {url}: check {key}.url")
    return Check(
        what, True, f"fetched {len(reply.content)} bytes; image-sync verifies the signature"
    )
