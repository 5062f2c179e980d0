"""The old tools' INI files (oslo.config style), read without their libraries."""

from __future__ import annotations

import configparser
from pathlib import Path
from typing import Any

from fedcloud_appliance.migrate import Draft

# keystoneauth option -> the appliance's Credentials key (secrets apart).
PLAIN = {
    "auth_url": "auth_url",
    "username": "username",
    "project_name": "project_name",
    "project_id": "project_id",
    "tenant_name": "project_name",
    "user_domain_name": "user_domain_name",
    "project_domain_name": "project_domain_name",
    "application_credential_id": "application_credential_id",
    "region_name": "region",
    "cafile": "ca_bundle",
}
SECRET = {
    "password": "password_file",
    "application_credential_secret": "application_credential_secret_file",
}
# Read here on purpose, so not named as left over.
HANDLED = {*PLAIN, *SECRET, "auth_type", "auth_plugin", "user_domain_id", "project_domain_id"}


def read(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path, encoding="utf-8")
    for section in [parser.default_section, *parser.sections()]:
        for option, value in list(parser[section].items()):
            if len(value) > 1 and value[0] == value[-1] and value[0] in "\"'":
                parser.set(section, option, value[1:-1])  # oslo.config unquotes
    return parser


def credentials(
    parser: configparser.RawConfigParser, section: str, draft: Draft, secret_prefix: str
) -> dict[str, Any]:
    """The keystoneauth options of ``section`` as the appliance's ``openstack`` keys."""
    if not parser.has_section(section):
        return {}
    found: dict[str, Any] = {}
    for option, value in parser.items(section):
        if option in PLAIN and value:
            found[PLAIN[option]] = value
        elif option in SECRET and value:
            found[SECRET[option]] = draft.secret(f"{secret_prefix}-{option}", value)
    if "auth_url" in found and not found["auth_url"].rstrip("/").endswith("/v3"):
        found["auth_url"] = found["auth_url"].rstrip("/") + "/v3"
    return found


def leftovers(
    parser: configparser.RawConfigParser,
    section: str,
    handled: set[str],
    draft: Draft,
    where: str,
    why: str,
) -> None:
    """Name every option of ``section`` nobody read, with ``why``."""
    if section != "DEFAULT" and not parser.has_section(section):
        return
    items = parser.defaults() if section == "DEFAULT" else parser[section]
    defaults = set(parser.defaults()) if section != "DEFAULT" else set()
    for option in items:
        if option not in handled and option not in defaults:
            draft.skip(f"{where} [{section}] {option}", why)


def other_sections(
    parser: configparser.RawConfigParser, read: set[str], draft: Draft, where: str, why: str
) -> None:
    """Name every option of the sections nobody read, with ``why``."""
    for section in parser.sections():
        if section not in read:
            leftovers(parser, section, set(), draft, where, why)
