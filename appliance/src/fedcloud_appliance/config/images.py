"""appliance.yaml's ``images``: the signed image lists replicated into Glance.

Bounded values use the types of ``fedcloud_common.settings.cloudkeeper``, so
what this section accepts is exactly what cloudkeeper accepts once rendered.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, HttpUrl, model_validator

from fedcloud_appliance.config.base import Cron, Section
from fedcloud_common.openstack import Credentials
from fedcloud_common.settings.cloudkeeper import (
    AdoptFrom,
    DiskFormat,
    EventHook,
    HttpTimeout,
    ListName,
    ParallelDownloads,
    Retries,
    list_names_problem,
)


class Endorser(Section):
    dn: str = Field(description="signer subject, e.g. /DC=EU/DC=EGI/C=NL/O=Hosts/...")
    ca: str = Field(description="signer's issuer DN")


class ImageList(Section):
    name: ListName = Field(description="a short name: Glance properties and status use it")
    url: HttpUrl = Field(description="where the signed hv:imagelist is fetched (https)")
    token_file: Path | None = Field(None, description="AppDB access token, in a root-only file")
    endorser: Endorser | None = Field(
        None, description="who must have signed this list; default: images.endorser"
    )
    vo: str | None = Field(None, description="the VO the list is for; the list must say so")
    project: str | None = Field(
        None, description="project the VO's images go to; default: the VO's in bdii.vos"
    )
    enabled: bool = Field(
        True, description="false: the list is not fetched, and cleanup retires its images"
    )
    prefix: str = Field("", description="put before this list's image names in Glance")
    adopt: AdoptFrom | None = Field(
        None,
        description="when moving from cloudkeeper-os or atrope: take over the images that tool "
        "placed for this list (same content: kept as they are, same id; other content: "
        "replaced like an older version) instead of uploading duplicates; auto: either tool's. "
        "For atrope, keep the list's name from hepix.yaml",
    )


class Images(Section):
    enabled: bool = Field(True, description="false: no image-sync job, nothing rendered")
    schedule: Cron = Field("0 */4 * * *", description="when image-sync runs (cron, UTC)")
    openstack: Credentials | None = Field(
        None, description="image replication's own credentials; none: the top-level ones"
    )
    lists: list[ImageList] = Field([], description="the signed image lists subscribed to")
    lists_file: Path | None = Field(
        None, description="cloudkeeper's image-lists.conf: one URL per line"
    )
    endorser: Endorser | None = Field(
        None, description="who signs every list that names no endorser (and lists_file's)"
    )
    ca_dir: Path = Field(
        Path("/etc/grid-security/certificates"),
        description="IGTF CA directory (with CRLs) the endorsers' certificates are checked with",
    )
    store: Path = Field(
        Path("/image_data"),
        description="host directory downloaded and converted images are kept in (the OVA's "
        "second disk); the services see it as /image_data",
    )
    formats: list[DiskFormat] = Field(
        ["qcow2", "raw"],
        min_length=1,
        description="disk formats Glance gets; others are converted to the first",
    )
    tag: str = Field(
        "fedcloud-appliance",
        min_length=1,
        description="the Glance tag marking the images the appliance manages (and only those)",
    )
    prefix: str = Field("", description="put before every managed image's name in Glance")
    parallel_downloads: ParallelDownloads = Field(
        2, description="images of one list downloaded at the same time (1 to 16)"
    )
    download_retries: Retries = Field(
        3,
        description="times an interrupted or failing (HTTP 5xx, 429) image download is resumed "
        "before the image counts as failed for this run (0 to 10)",
    )
    http_timeout_s: HttpTimeout = Field(
        30,
        description="seconds a list or image server may take to accept the connection or to "
        "send the next bytes before that request fails (at most 3600)",
    )
    event_hook: EventHook | None = Field(
        None,
        description="shell command run on each image added to or retired from Glance, with "
        "the VMCATCHER_EVENT_* environment vmcatcher gives its event handler (TYPE is "
        "AvailablePostfix or ExpirePostfix); it runs in the cloudkeeper-os container, as its "
        "user, and is stopped after 10 s",
    )
    vmcatcher_list: ListName = Field(
        "vmcatcher",
        description="list name that images from vmcatcher's cache events are managed "
        "under; cleanup keeps them",
    )

    @model_validator(mode="after")
    def _lists_are_named_once_and_trusted(self) -> Images:
        names = [image_list.name for image_list in self.lists]
        if problem := list_names_problem(names, self.vmcatcher_list):
            raise ValueError(problem)
        if self.endorser is None:
            unsigned = [lst.name for lst in self.lists if lst.endorser is None]
            if self.lists_file is not None:
                unsigned.append("lists_file")
            if unsigned:
                raise ValueError(
                    f"no endorser for {', '.join(unsigned)}: give images.endorser (dn, ca) "
                    "or an endorser per list"
                )
        return self
