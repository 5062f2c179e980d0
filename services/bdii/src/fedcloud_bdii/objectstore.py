"""Publish the GLUE 2.1 JSON to object storage, where the federation reads it.

Since cloud-info-provider 1.0 the federation reads sites' GLUE 2.1 JSON
from object storage: EGI's operations upload each site's document to a
Swift container (``rclone copy cloud-info.json remote:<container>/<site>``,
so the object is ``<site>/cloud-info.json``) and cloud-info-api lists that
container and reads every object in it. The resource BDII uploads the very
document it publishes in LDAP (health included) to the same layout:

- only on change: the fingerprint of the publisher's input and a digest of
  the last uploaded document's content are kept in
  ``state_dir/objectstore.json``; the same input is not even rendered again,
  and a document that differs only in its CreationTime stamps (every
  cloud-info-provider run restamps every object) is not sent again until
  the uploaded one is half its Validity old, as the BDII does (updater.py);
  no request at all is made then;
- atomically: the document goes to a temporary object, is checked (Swift's
  ETag is its MD5), copied server-side to the final name and the temporary
  object deleted, so readers see the old or the new document, never part;
- a failure leaves the final object (the last good copy) as it was, and is
  returned as a one-line reason for the publisher to report; the record
  is not updated, so the next cycle tries again.

Swift (``kind = "swift"``) is reached with Keystone credentials (the
BDII's own by default), through python-swiftclient, on the object-store
endpoint of the token's catalog unless ``storage_url`` names another. An
S3-compatible store (``kind = "s3"``: Swift's s3api, Ceph RGW, MinIO...) is
reached with boto3 at ``endpoint_url`` with an access key and its secret
(from a file), path-style; the bucket is ``container``, the same layout.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fedcloud_common.files import write_json
from fedcloud_common.openstack import Credentials
from fedcloud_common.secrets import read_secret
from fedcloud_common.settings.bdii import ObjectStoreSettings

LOG = logging.getLogger(__name__)
# Anyone may read and list: cloud-info-api reads the container without credentials.
PUBLIC_READ = ".r:*,.rlistings"


@dataclass(frozen=True)
class Upload:
    """What one publish did with the document (recorded in status.json)."""

    outcome: str  # uploaded, unchanged, failed
    url: str
    error: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"outcome": self.outcome, "url": self.url, "error": self.error}


class ObjectStore:
    """The document's home, ``container/object_name``: what is common to every kind."""

    def __init__(
        self,
        settings: ObjectStoreSettings,
        site: str,
        state_dir: Path,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.settings = settings
        self.object_name = settings.object_name.format(site=site)
        self.record_path = state_dir / "objectstore.json"

    @property
    def where(self) -> str:
        return f"{self.settings.kind}:{self.settings.container}/{self.object_name}"

    def temporary_name(self) -> str:
        return f"{self.object_name}.uploading-{uuid.uuid4().hex}"

    def _upload(self, document: bytes) -> str:
        """Put the document in place atomically; its URL. Raises on any failure."""
        raise NotImplementedError

    def publish(self, fingerprint: str | None, render: Callable[[], bytes]) -> Upload:
        """Upload ``render()`` unless it is what the store already holds."""
        record = self._record()
        same_place = record.get("where") == self.where
        if same_place and fingerprint is not None and record.get("fingerprint") == fingerprint:
            return Upload("unchanged", record.get("url", self.where))
        document = render()
        digest, validity = content_digest(document)
        fresh = self.clock() < record.get("uploaded_at", 0) + validity / 2
        if same_place and record.get("content") == digest and fresh:
            self._save(record | {"fingerprint": fingerprint})
            return Upload("unchanged", record.get("url", self.where))
        try:
            url = self._upload(document)
        except Exception as exc:  # swiftclient, keystoneauth and socket errors alike
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            LOG.error("upload of the GLUE 2.1 JSON to %s failed: %s", self.where, reason)
            return Upload("failed", record.get("url", self.where), reason)
        now = self.clock()
        self._save(
            {
                "fingerprint": fingerprint,
                "content": digest,
                "where": self.where,
                "url": url,
                "uploaded_at": now,
                "time": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
            }
        )
        return Upload("uploaded", url)

    def _record(self) -> dict[str, Any]:
        try:
            loaded = json.loads(self.record_path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def _save(self, record: dict[str, Any]) -> None:
        write_json(self.record_path, record)


class SwiftStore(ObjectStore):
    """Swift through python-swiftclient, authenticated by Keystone."""

    def __init__(
        self,
        settings: ObjectStoreSettings,
        credentials: Credentials,
        site: str,
        state_dir: Path,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(settings, site, state_dir, clock)
        self.credentials = credentials

    def _upload(self, document: bytes) -> str:
        import swiftclient.client  # only the resource BDII with a store needs it

        conn = self._connect(swiftclient.client)
        container = self.settings.container
        try:
            conn.head_container(container)
        except swiftclient.client.ClientException as exc:
            if exc.http_status != 404:
                raise
            headers = {"X-Container-Read": PUBLIC_READ} if self.settings.public_read else {}
            conn.put_container(container, headers=headers)
        temporary = self.temporary_name()
        etag = conn.put_object(
            container, temporary, document, content_type="application/json",
            etag=hashlib.md5(document, usedforsecurity=False).hexdigest(),
        )  # fmt: skip
        try:
            conn.copy_object(container, temporary, f"/{container}/{self.object_name}")
        finally:
            conn.delete_object(container, temporary)
        LOG.info("uploaded the GLUE 2.1 JSON to %s (etag %s)", self.where, etag)
        return f"{conn.url}/{container}/{self.object_name}"

    def _connect(self, client: Any) -> Any:
        session = self.credentials.connect().session
        os_options = {
            "service_type": "object-store",
            "endpoint_type": "public",
            "region_name": self.credentials.region,
        }
        if self.settings.storage_url:
            os_options["object_storage_url"] = str(self.settings.storage_url).rstrip("/")
        return client.Connection(
            session=session,
            os_options=os_options,
            retries=self.settings.retries,
            timeout=self.credentials.timeout_s,
        )


class S3Store(ObjectStore):
    """An S3-compatible store through boto3 (path-style, SigV4)."""

    def _upload(self, document: bytes) -> str:
        import boto3  # only the resource BDII with an S3 store needs it
        import botocore.config
        import botocore.exceptions

        settings = self.settings
        assert settings.endpoint_url and settings.secret_access_key_file  # see the model
        endpoint = str(settings.endpoint_url).rstrip("/")
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=settings.access_key_id,
            aws_secret_access_key=read_secret(settings.secret_access_key_file).reveal(),
            region_name=settings.region,
            config=botocore.config.Config(
                s3={"addressing_style": "path"},
                connect_timeout=30,
                read_timeout=60,
                retries={"max_attempts": settings.retries + 1},
            ),
        )
        bucket = settings.container
        try:
            client.head_bucket(Bucket=bucket)
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
                raise
            acl = "public-read" if settings.public_read else "private"
            client.create_bucket(Bucket=bucket, ACL=acl)
        temporary = self.temporary_name()
        md5 = hashlib.md5(document, usedforsecurity=False).digest()
        client.put_object(
            Bucket=bucket, Key=temporary, Body=document, ContentType="application/json",
            ContentMD5=base64.b64encode(md5).decode(),
        )  # fmt: skip
        try:
            client.copy_object(
                Bucket=bucket, Key=self.object_name,
                CopySource={"Bucket": bucket, "Key": temporary},
            )  # fmt: skip
        finally:
            client.delete_object(Bucket=bucket, Key=temporary)
        LOG.info("uploaded the GLUE 2.1 JSON to %s", self.where)
        return f"{endpoint}/{bucket}/{self.object_name}"


# cloud-info-provider's Validity (12 h), for a document that states none.
DEFAULT_VALIDITY_S = 43200.0


def content_digest(document: bytes) -> tuple[str, float]:
    """(digest of the document without its CreationTime stamps, its smallest Validity)."""
    parsed = json.loads(document)
    validities: list[float] = []
    if isinstance(parsed, dict):
        for objects in parsed.values():
            for obj in objects if isinstance(objects, list) else []:
                if isinstance(obj, dict):
                    obj.pop("CreationTime", None)
                    if isinstance(obj.get("Validity"), int | float):
                        validities.append(float(obj["Validity"]))
    canonical = json.dumps(parsed, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest(), min(validities, default=DEFAULT_VALIDITY_S)
