"""Image replication's settings: what the render step writes for cloudkeeper
and cloudkeeper-os, and what both load (``cloudkeeper.json``).

The bounds live here, as annotated types, so appliance.yaml's ``images``
section validates with the very same limits: a value the appliance accepts
is never refused by the service it is rendered for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from fedcloud_common.model import Model
from fedcloud_common.openstack import Credentials

# A list's name is a Glance property value, a status file name and a cache
# directory: one plain word.
ListName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
# What Glance may be given; images in other formats are converted to the first.
DiskFormat = Literal["qcow2", "raw", "vmdk", "vdi"]
# More parallel downloads than this only contend for the same disk and link.
ParallelDownloads = Annotated[int, Field(ge=1, le=16)]
Retries = Annotated[int, Field(ge=0, le=10)]
HttpTimeout = Annotated[float, Field(gt=0, le=3600)]
EventHook = Annotated[str, Field(min_length=1)]
# Whose images a list takes over when it first lands in Glance (the tool the
# site ran before); auto: either's.
AdoptFrom = Literal["cloudkeeper-os", "atrope", "auto"]

DEFAULT_TAG = "fedcloud-cloudkeeper"


class ListSource(Model):
    """One subscribed image list and whom we trust to sign it."""

    name: ListName = Field(
        description="the list's name here: status, cache directory and Glance property"
    )
    url: str = Field(pattern=r"^https?://\S+$", description="where the signed list is fetched")
    endorser_dn: str = Field(description="subject DN the list's signer certificate must have")
    endorser_ca: str = Field(description="issuer DN of the signer's certificate")
    token_file: Path | None = Field(
        None, description="file holding the AppDB token, sent as the basic-auth user"
    )
    project: str | None = Field(
        None, description="project the images are shared with; none: private images"
    )
    prefix: str = Field("", description="put before this list's image names in Glance")
    enabled: bool = Field(
        True, description="false: not fetched, and cleanup retires its images as unsubscribed"
    )
    vo: str | None = Field(
        None, description="the VO the list must be for (its ad:vo); another VO's list is refused"
    )
    adopt: AdoptFrom | None = Field(
        None,
        description="take over the images this old tool placed for the list instead of "
        "uploading copies; none: images without our tag are never touched",
    )


class CloudkeeperSettings(Model):
    """Everything ``cloudkeeper`` (the job) and ``cloudkeeper-os`` (the backend) read."""

    lists: tuple[ListSource, ...] = Field((), description="the subscribed image lists")
    ca_path: Path = Field(
        Path("/etc/grid-security/certificates"),
        description="hashed CA directory (IGTF) that list signatures are verified against",
    )
    state_dir: Path = Field(
        Path("/var/spool/cloudkeeper/state"),
        description="last trusted lists, status files and the run lock; under the spool "
        "because the job and the backend share only that volume (and the image store)",
    )
    cache_dir: Path = Field(
        Path("/image_data"), description="the image store downloads and conversions land in"
    )
    spool_dir: Path = Field(
        Path("/var/spool/cloudkeeper"),
        description="where the job queues requests for the backend",
    )
    openstack: Credentials | None = Field(
        None, description="the appliance's credentials; none: the clouds.yaml entry `cloud`"
    )
    cloud: str = Field("fedcloud", description="clouds.yaml entry used when openstack is not given")
    clouds_yaml: Path | None = Field(
        None, description="clouds.yaml holding `cloud`; none: openstacksdk's usual places"
    )
    https_verify: bool | str = Field(
        True,
        description="what verifies the list and image servers' TLS: true (system CAs), "
        "a bundle file or a hashed CA directory",
    )
    environment: dict[str, str] = Field(
        {},
        description="proxy variables (HTTPS_PROXY, NO_PROXY) for the list and image downloads",
    )
    name_prefix: str = Field("", description="put before every image name in Glance")
    tag: str = Field(
        DEFAULT_TAG,
        min_length=1,
        description="Glance tag marking the images we manage; images without it are never touched",
    )
    accepted_formats: tuple[DiskFormat, ...] = Field(
        ("qcow2", "raw"),
        min_length=1,
        description="disk formats Glance gets as they are; others are converted to the first",
    )
    timeout_s: HttpTimeout = Field(
        30.0,
        description="seconds a list or image server may take to connect or to send the next "
        "bytes before that request fails",
    )
    retries: Retries = Field(
        3, description="times an interrupted or 5xx image download is resumed before it fails"
    )
    backoff_s: float = Field(
        2.0, ge=0, description="wait before the first retry; doubled for each further one"
    )
    parallel_downloads: ParallelDownloads = Field(
        2, description="images of one list downloaded at the same time"
    )
    reserve_bytes: int = Field(
        256 * 1024 * 1024,
        ge=0,
        description="bytes kept free in cache_dir beyond the image being fetched",
    )
    endorser_dn: str | None = Field(
        None, description="signer DN trusted for the lists of image_lists_conf"
    )
    endorser_ca: str | None = Field(None, description="issuer DN of that signer's certificate")
    image_lists_conf: Path | None = Field(
        None,
        description="cloudkeeper's image-lists.conf (one URL per line), read at start; "
        "its lists are trusted for endorser_dn/endorser_ca",
    )
    event_hook: EventHook | None = Field(
        None,
        description="shell command cloudkeeper-os runs on each image it adds or retires, with "
        "the VMCATCHER_EVENT_* environment vmcatcher gives its event handler",
    )
    vmcatcher_list: ListName = Field(
        "vmcatcher",
        description="the list name images from vmcatcher's cache events are managed under",
    )
    vo_projects: dict[str, str] = Field(
        {}, description="VO -> project that vmcatcher events' images are shared with"
    )

    @model_validator(mode="after")
    def _lists_are_named_once(self) -> CloudkeeperSettings:
        if problem := list_names_problem([s.name for s in self.lists], self.vmcatcher_list):
            raise ValueError(problem)
        return self


def list_names_problem(names: list[str], vmcatcher_list: str) -> str | None:
    """What is wrong with these list names (appliance.yaml's and the settings' check)."""
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        return f"two lists have the same name: {', '.join(repeated)}; give each its own"
    if vmcatcher_list in names:
        return (
            f"vmcatcher_list {vmcatcher_list!r} is also the name of a list: syncing that "
            "list would retire vmcatcher's images; choose another name"
        )
    return None
