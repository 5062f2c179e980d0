"""appliance.yaml's ``images``: the signed image lists replicated into Glance."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, HttpUrl, model_validator

from fedcloud_appliance.config.base import Cron, Section
from fedcloud_common.openstack import Credentials


class Endorser(Section):
    dn: str = Field(description="signer subject, e.g. /DC=EU/DC=EGI/C=NL/O=Hosts/...")
    ca: str = Field(description="signer's issuer DN")


class ImageList(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    url: HttpUrl
    token_file: Path | None = None
    endorser: Endorser | None = None
    vo: str | None = None
    project: str | None = Field(
        None, description="project the VO's images go to; default: the VO's in bdii.vos"
    )
    enabled: bool = True
    prefix: str = ""


class Images(Section):
    enabled: bool = True
    schedule: Cron = "0 */4 * * *"
    openstack: Credentials | None = None
    lists: list[ImageList] = []
    lists_file: Path | None = Field(
        None, description="cloudkeeper's image-lists.conf: one URL per line"
    )
    endorser: Endorser | None = Field(
        None, description="who signs every list that names no endorser (and lists_file's)"
    )
    ca_dir: Path = Path("/etc/grid-security/certificates")
    formats: list[Literal["qcow2", "raw", "vmdk", "vdi"]] = ["qcow2", "raw"]
    tag: str = "fedcloud-appliance"
    prefix: str = ""

    @model_validator(mode="after")
    def _lists_are_named_once_and_trusted(self) -> Images:
        names = [image_list.name for image_list in self.lists]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"image list names must be unique; repeated: {duplicates}")
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
