"""appliance.yaml's ``site``: who the site is, as GOCDB and the BDII name it."""

from __future__ import annotations

from pydantic import Field

from fedcloud_appliance.config.base import Section


class Contacts(Section):
    email: str
    security_email: str | None = None


class Site(Section):
    name: str = Field(description="the site's name exactly as in GOCDB")
    hostname: str = Field(description="public host name of the appliance")
    country: str | None = None
    contacts: Contacts | None = None
