"""The Glance properties of the tools the appliance replaces, and how to read them.

Sites run consumers written for cloudkeeper-os (``APPLIANCE_*``, with
``APPLIANCE_STATUS`` telling in-service images from those on their way out)
and for atrope (``appdb_id``, ``image_list``, ``vo``, ``image_hash``). The
appliance writes both, so either kind keeps working after a migration; and
it reads both, to recognise the images those tools left behind
(fedcloud_cloudkeeper.adopt).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from fedcloud_cloudkeeper.imagelist import Image, ImageList

Tool = Literal["cloudkeeper-os", "atrope"]

# cloudkeeper-os 0.9: ACTIVE while the image is in the list, EOL once it is
# kept only until it can go (deactivated by us, or its backup).
STATUS_PROPERTY = "APPLIANCE_STATUS"
ACTIVE = "ACTIVE"
EOL = "EOL"
# atrope's tag; EGI's fork makes it configurable (the central sync uses
# "atrope-catchall"), so any tag starting with it counts.
ATROPE_TAG = "atrope"


def written(image: Image, image_list: ImageList, list_name: str) -> dict[str, str]:
    """What atrope and cloudkeeper-os consumers read, beyond ``APPLIANCE_*``."""
    return {
        STATUS_PROPERTY: ACTIVE,
        "appdb_id": image.identifier,  # atrope: the list entry's dc:identifier
        "image_list": list_name,  # atrope: the list's name in its configuration
        "vo": image_list.vo or "",
        "image_hash": f"sha512:{image.sha512}",  # EGI's atrope: "sha512:<hex>"
    }


def placed_by(image: Mapping[str, Any]) -> Tool | None:
    """Which old tool left this Glance image (API's flat view), if either did."""
    if image.get("fedcloud_content_digest"):
        return None  # another appliance's (another tag): never the old tools'
    tags = image.get("tags") or []
    if any(tag == ATROPE_TAG or tag.startswith(f"{ATROPE_TAG}-") for tag in tags):
        return "atrope" if image.get("appdb_id") else None
    if image.get("APPLIANCE_ID") and image.get("APPLIANCE_IMAGE_LIST_ID"):
        return "cloudkeeper-os"
    return None


def identifier(image: Mapping[str, Any], tool: Tool) -> str:
    """The list entry's dc:identifier, as the old tool stored it."""
    key = "appdb_id" if tool == "atrope" else "APPLIANCE_ID"
    return str(image.get(key) or "")


def belongs_to(image: Mapping[str, Any], tool: Tool, list_name: str, list_id: str) -> bool:
    """Whether the old tool placed it for this list.

    atrope knows a list by its name in hepix.yaml (keep that name here);
    cloudkeeper-os by the list's own dc:identifier.
    """
    if tool == "atrope":
        return image.get("image_list") == list_name
    return image.get("APPLIANCE_IMAGE_LIST_ID") == list_id


def sha512(image: Mapping[str, Any]) -> str | None:
    """The image's SHA-512: the old tool's record of it, else Glance's own hash.

    atrope 2.0 stores ``sha512`` (hex), EGI's fork ``image_hash``
    (``sha512:<hex>``), cloudkeeper-os the list entry in
    ``APPLIANCE_ATTRIBUTES``. Glance's ``os_hash_value`` is the stored bytes',
    which differ from the list's when the old tool converted the image.
    """
    for value in (image.get("image_hash"), image.get("sha512"), _attribute(image)):
        if isinstance(value, str) and value:
            return value.lower().removeprefix("sha512:")
    if image.get("os_hash_algo") == "sha512" and image.get("os_hash_value"):
        return str(image["os_hash_value"]).lower()
    return None


def _attribute(image: Mapping[str, Any]) -> object:
    try:
        attributes = json.loads(image.get("APPLIANCE_ATTRIBUTES") or "{}")
    except ValueError:
        return None
    return attributes.get("sl:checksum:sha512") if isinstance(attributes, dict) else None
