"""Errors of image replication, each naming what failed and where.

A wrong setting is ``fedcloud_common.errors.ConfigError``, the one class
every service and the supervisor raise for configuration mistakes.
"""

from __future__ import annotations

from fedcloud_common.errors import FedcloudError


class CloudkeeperError(FedcloudError):
    msg_fmt = "image replication failed"


class ImageListInvalidError(CloudkeeperError):
    msg_fmt = "image list {source}: field {field}: {problem}"


class ImageListUntrustedError(CloudkeeperError):
    msg_fmt = "image list {source}: not trusted: {problem}"


class FetchError(CloudkeeperError):
    msg_fmt = "fetching {url} failed: {problem}"


class DownloadError(CloudkeeperError):
    msg_fmt = "image {image}: download from {url} failed: {problem}"


class NoSpaceError(CloudkeeperError):
    msg_fmt = "image {image}: {needed} bytes needed in {path}, only {free} free"


class UnsupportedFormatError(CloudkeeperError):
    msg_fmt = "image {image}: {problem}"


class GlanceError(CloudkeeperError):
    msg_fmt = "image {image}: Glance {action} failed: {problem}"
