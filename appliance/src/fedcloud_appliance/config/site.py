"""appliance.yaml's ``site``: who the site is, as GOCDB and the BDII name it.

Everything here reaches the site BDII (``render/bdii.py``): the name is the
GLUE 2 AdminDomain's ID, the rest its description, Location, Contacts and
the address it publishes for itself. The value types are the BDII settings'
own, so what passes ``config check`` is what the BDII publishes.
"""

from __future__ import annotations

from pydantic import Field, HttpUrl

from fedcloud_appliance.config.base import Section
from fedcloud_common.settings.bdii import CountryCode, Email, Hostname


class Contacts(Section):
    email: Email = Field(
        description="the site's operations mailbox, published as the general GLUE 2 Contact"
    )
    security_email: Email | None = Field(
        None, description="the site's security contact, published as the security GLUE 2 Contact"
    )


class Site(Section):
    name: str = Field(min_length=1, description="the site's name exactly as in GOCDB")
    hostname: Hostname = Field(
        description="public host name of the appliance: the site BDII publishes its "
        "endpoint as ldap://<hostname>:<bdii.port>"
    )
    country: CountryCode | None = Field(
        None, description="ISO 3166-1 alpha-2 code of the site's country (e.g. NL)"
    )
    description: str | None = Field(
        None, min_length=1, description="a sentence about the site, for the GLUE 2 AdminDomain"
    )
    www: HttpUrl | None = Field(None, description="the site's web page, for the AdminDomain")
    contacts: Contacts | None = Field(
        None, description="who runs the site, published as GLUE 2 Contacts"
    )
