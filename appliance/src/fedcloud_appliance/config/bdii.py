"""appliance.yaml's ``bdii``: the information system and the site's VOs."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, HttpUrl, model_validator

from fedcloud_appliance.config.base import Cron, Section
from fedcloud_common.openstack import Credentials
from fedcloud_common.settings.bdii import BDII_PORT, Port, object_store_problem


class VoMapping(Section):
    project: str = Field(
        description="the VO's Keystone project, by name or id: the BDII publishes it as the "
        "VO's share (a name is looked up among the projects of the appliance's user), and "
        "images of the VO's lists are shared with it"
    )


class ObjectStore(Section):
    """Object storage the resource BDII uploads the site's GLUE 2.1 JSON to."""

    kind: Literal["swift", "s3"] = Field(
        "swift",
        description="swift: OpenStack Swift with Keystone credentials (what EGI runs); s3: "
        "any S3-compatible store, with endpoint_url, access_key_id and "
        "secret_access_key_file",
    )
    container: str = Field(
        min_length=1,
        description="the Swift container (EGI: the one cloud-info-api reads; ask EGI "
        "operations for its name and a project that may write it)",
    )
    object_name: str = Field(
        "{site}/cloud-info.json",
        min_length=1,
        description="the object's name; {site} becomes site.name (EGI's layout: "
        "<site>/cloud-info.json, what cloud-info-api reads)",
    )
    storage_url: HttpUrl | None = Field(
        None,
        description="the Swift account URL (…/v1/AUTH_<project id>) when it is not the "
        "object-store endpoint of the credentials' Keystone catalog (e.g. EGI's store "
        "at another site)",
    )
    openstack: Credentials | None = Field(
        None,
        description="credentials for the store's Keystone; none: the BDII's own "
        "(bdii.openstack, else the top-level openstack section)",
    )
    public_read: bool = Field(
        True,
        description="a container the BDII has to create is made readable and listable by "
        "anyone, since cloud-info-api reads without credentials",
    )
    endpoint_url: HttpUrl | None = Field(
        None, description="kind s3: the store's S3 endpoint, e.g. https://s3.example.org"
    )
    access_key_id: str | None = Field(None, min_length=1, description="kind s3: the access key")
    secret_access_key_file: Path | None = Field(
        None, description="kind s3: a root-only file in the secrets directory with its secret"
    )
    region: str = Field(
        "us-east-1", min_length=1, description="kind s3: the region requests are signed for"
    )

    @model_validator(mode="after")
    def _keys_of_its_kind(self) -> ObjectStore:
        # The same rule, in the same words, as the service's settings.
        if problem := object_store_problem(self):
            raise ValueError(problem)
        return self


class Bdii(Section):
    enabled: bool = Field(
        True, description="false: no BDII settings are rendered and no bdii-publish job runs"
    )
    schedule: Cron = Field("*/30 * * * *", description="when the bdii-publish job runs (cron, UTC)")
    openstack: Credentials | None = Field(
        None, description="the BDII's own credentials; none: the top-level openstack section"
    )
    vos: dict[str, VoMapping] = Field(
        {}, description="VO -> the project its share is published with"
    )
    vo_map_file: Path | None = Field(
        None,
        description="voms.json-style VO-to-project map (Keystone-VOMS, cASO); the loader "
        "merges its VOs into vos, whose own entries win",
    )
    delete_delay: datetime.timedelta = Field(
        datetime.timedelta(hours=1),
        description="how long an entry that vanished from the cloud stays published",
    )
    object_store: ObjectStore | None = Field(
        None,
        description="also upload the GLUE 2.1 JSON the resource BDII publishes (only when "
        "it changed, atomically) to Swift, where the federation reads it today; none: the "
        "BDII alone",
    )
    port: Port = Field(
        BDII_PORT,
        description="the host port the site BDII is published on (slapd listens on 2170 "
        "inside its container); the site BDII's GLUE 2 endpoint names it",
    )

    def projects(self) -> dict[str, str]:
        """The site's VO -> project map: what the BDII publishes, where images go."""
        return {vo: mapping.project for vo, mapping in self.vos.items()}
