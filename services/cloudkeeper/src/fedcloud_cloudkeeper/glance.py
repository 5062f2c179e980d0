"""Glance through openstacksdk: read our images, and the few writes we make.

Image records are created and their bytes PUT with the raw image API so the
upload streams the file once (the SDK's ``create_image`` hashes the file
first: a second full read). Metadata updates go through
``update_image_properties`` on a freshly fetched image, which sends a JSON
patch of just the differences. Sharing adds the VO project as a member and
accepts it with a connection scoped to that project, as Glance requires.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import openstack
from openstack.connection import Connection

from fedcloud_cloudkeeper import conventions
from fedcloud_cloudkeeper.errors import GlanceError
from fedcloud_cloudkeeper.plan import LIST_PROPERTY, Managed, Target

if TYPE_CHECKING:
    from fedcloud_cloudkeeper.config import Config

LOG = logging.getLogger(__name__)
PAGE = 1000  # Glance's default api_limit_max

Connect = Callable[[str | None], Connection]


def connector_for(config: Config) -> Connect:
    """The appliance's rendered credentials when given, else a clouds.yaml entry."""
    credentials = config.openstack
    if credentials is not None:
        return lambda project: (
            credentials.connect(project_name=project) if project else credentials.connect()
        )
    return connector(config.cloud, config.clouds_yaml)


def connector(cloud: str, clouds_yaml: Path | None = None) -> Connect:
    """Connections from clouds.yaml: the configured project, or a VO project by name."""

    def connect(project: str | None) -> Connection:
        files = [str(clouds_yaml)] if clouds_yaml else None
        config = openstack.config.OpenStackConfig(config_files=files)
        overrides = {"project_name": project} if project else {}
        if project:
            overrides["project_id"] = None  # type: ignore[assignment]
        region = config.get_one(cloud=cloud, **overrides)
        return Connection(config=region)

    return connect


class Glance:
    def __init__(self, connect: Connect, tag: str) -> None:
        self._connect = connect
        self.tag = tag
        self.conn = connect(None)
        self._projects: dict[str, str] = {}
        self._members: dict[str, Connection] = {}

    def managed(self, list_name: str | None = None) -> list[Managed]:
        """Our tagged images in our project: one API call for up to 1000 images.

        The raw listing is used because the SDK always follows Glance's
        ``next`` link, costing a second call even when the page was not full.
        """
        return [
            image
            for image in self._listing({"tag": self.tag})
            if self.tag in (image.properties.get("tags") or [])
            and (list_name is None or image.properties.get(LIST_PROPERTY) == list_name)
        ]

    def foreign(self, project: str | None = None) -> list[Managed]:
        """Images without our tag in our project (or owned by ``project``, seen
        from inside it): what old tools may have left. cloudkeeper-os 0.9
        uploaded into each VO's project."""
        try:
            conn = self.conn if project is None else self._as_member(project)
            if project is not None and conn.current_project_id == self.conn.current_project_id:
                return []  # the list's project is ours: already in foreign()
            images = self._listing({}, conn)
        except Exception as error:  # keystoneauth's and the SDK's alike
            if project is None:
                raise
            # No role there: sharing with it fails too, and says so for each image.
            LOG.warning("cannot list project %s's images: %s", project, error)
            return []
        return [image for image in images if self.tag not in (image.properties.get("tags") or [])]

    def adopt(self, existing: Managed, properties: dict[str, str]) -> None:
        """Make an old tool's image ours: properties first, our tag last.

        Until the tag is there the image is not ours, so a crash in between
        leaves it to be adopted again by the next run, never half-adopted.
        """
        image = self.conn.image.get_image(existing.id)
        current = self.conn.image.get(f"/images/{existing.id}").json()
        changes = {key: value for key, value in properties.items() if current.get(key) != value}
        if changes:
            self.conn.image.update_image_properties(image, **changes)
        self.conn.image.add_tag(image, self.tag)

    def _listing(self, filters: dict[str, Any], conn: Connection | None = None) -> list[Managed]:
        conn = conn or self.conn
        found = []
        query: dict[str, Any] = {
            **filters,
            "owner": conn.current_project_id,
            "limit": PAGE,
        }
        while True:
            reply = conn.image.get("/images", params=query, raise_exc=False)
            if reply.status_code != 200:
                raise GlanceError(image="*", action="list", problem=_detail(reply))
            page = reply.json().get("images", [])
            for image in page:
                found.append(
                    Managed(
                        image["id"],
                        image.get("name") or "",
                        image["status"],
                        image,
                        image.get("created_at") or "",
                    )
                )
            if len(page) < PAGE:
                return found
            query["marker"] = page[-1]["id"]

    def add(self, target: Target, path: Path, disk_format: str, sha512: str | None = None) -> str:
        """A new active image with ``path``'s bytes; on failure nothing is left behind.

        The upload is never retried by the client: a retry would resend a
        half-read file. Glance's own size (and SHA-512, when the file is the
        list's bytes unconverted) must match what we sent.
        """
        body: dict[str, Any] = {
            "name": target.name,
            "disk_format": disk_format,
            "container_format": "bare",
            "visibility": "shared" if target.project else "private",
            "min_ram": target.min_ram,
            "min_disk": target.min_disk,
            "tags": [self.tag],
            **target.properties,
        }
        image = target.image.identifier
        reply = self.conn.image.post("/images", json=body, raise_exc=False)
        if reply.status_code != 201:
            raise GlanceError(image=image, action="create", problem=_detail(reply))
        image_id = reply.json()["id"]
        try:
            with path.open("rb") as data:
                reply = self.conn.image.put(
                    f"/images/{image_id}/file",
                    data=data,
                    headers={"Content-Type": "application/octet-stream"},
                    raise_exc=False,
                    # keystoneauth retries 503s by default, resending from
                    # wherever the file was: half an image under a good name.
                    connect_retries=0,
                    status_code_retries=0,
                    retriable_status_codes=[],
                )
            if reply.status_code not in (201, 204):
                raise GlanceError(image=image, action="upload", problem=_detail(reply))
            stored = self.conn.image.get_image(image_id)
            if stored.status != "active":
                raise GlanceError(image=image, action="upload", problem=f"image is {stored.status}")
            if stored.size != path.stat().st_size or (
                sha512 and stored.hash_algo == "sha512" and stored.hash_value != sha512
            ):
                raise GlanceError(image=image, action="upload", problem="Glance stored other bytes")
            if target.project:
                self.share(image_id, target.project, image)
        except BaseException:
            self._delete_quietly(image_id)
            raise
        return image_id

    def update(self, existing: Managed, target: Target) -> None:
        image = self.conn.image.get_image(existing.id)
        if image.status == "deactivated":
            self.conn.image.reactivate_image(image)
        # The API's flat view: well-known keys (os_distro...) are not in .properties.
        current = self.conn.image.get(f"/images/{existing.id}").json()
        changes: dict[str, Any] = {
            key: value for key, value in target.properties.items() if current.get(key) != value
        }
        if image.name != target.name:
            changes["name"] = target.name
        if image.min_ram != target.min_ram:
            changes["min_ram"] = target.min_ram
        wanted_visibility = "shared" if target.project else "private"
        if image.visibility != wanted_visibility:
            changes["visibility"] = wanted_visibility
        if changes:
            self.conn.image.update_image_properties(image, **changes)
        if target.project:
            self.share(existing.id, target.project, target.image.identifier)

    def share(self, image_id: str, project: str, image: str) -> None:
        """Make ``project`` a member that has accepted the image."""
        project_id = self._project_id(project, image)
        member = self.conn.image.find_member(project_id, image_id)
        if member is None:
            self.conn.image.add_member(image_id, member=project_id)
        if member is None or member.status != "accepted":
            self._as_member(project).image.update_member(project_id, image_id, status="accepted")

    def _as_member(self, project: str) -> Connection:
        """A connection scoped to ``project`` (the appliance's user has a role there)."""
        if project not in self._members:
            self._members[project] = self._connect(project)
        return self._members[project]

    def retire(self, existing: Managed) -> str:
        """Delete; if Glance refuses, make it private, mark it EOL and deactivate it."""
        try:
            self.conn.image.delete_image(existing.id, ignore_missing=True)
            return "deleted"
        except openstack.exceptions.SDKException as error:
            LOG.warning("deleting %s failed (%s); deactivating it", existing.id, error)
        try:
            image = self.conn.image.get_image(existing.id)
            kept = {conventions.STATUS_PROPERTY: conventions.EOL}  # cloudkeeper-os' mark
            self.conn.image.update_image_properties(image, visibility="private", **kept)
            if image.status == "active":
                self.conn.image.deactivate_image(existing.id)
            return "deactivated"
        except openstack.exceptions.SDKException as error:
            raise GlanceError(
                image=existing.identifier, action="retire", problem=str(error)[:300]
            ) from None

    def _project_id(self, project: str, image: str) -> str:
        if project not in self._projects:
            found = self.conn.identity.find_project(project, ignore_missing=True)
            if found is None:
                raise GlanceError(image=image, action="share", problem=f"no project {project}")
            self._projects[project] = found.id
        return self._projects[project]

    def _delete_quietly(self, image_id: str) -> None:
        try:
            self.conn.image.delete_image(image_id, ignore_missing=True)
        except Exception as error:  # the next run cleans what is left ("clean")
            LOG.warning("could not delete unfinished image %s: %s", image_id, error)


def _detail(reply: Any) -> str:
    return f"HTTP {reply.status_code}: {' '.join(str(reply.text).split())[:200]}"
