"""Image downloads against the HTTPS test server: check as it arrives, resume, clean up."""

from __future__ import annotations

import hashlib
import os

import pytest

from fedcloud_cloudkeeper import fetch
from fedcloud_cloudkeeper.errors import DownloadError, NoSpaceError

DATA = os.urandom(3 * 1024 * 1024 + 17)
SHA = hashlib.sha512(DATA).hexdigest()


@pytest.fixture
def downloader(signing):
    waits: list[float] = []
    made = fetch.Downloader(
        fetch.session(str(signing.ca_dir)),
        timeout_s=5,
        retries=2,
        backoff_s=0.5,
        sleep=waits.append,
    )
    made.waits = waits
    return made


def _serve(signing, name: str, data: bytes = DATA) -> str:
    signing.server.files[f"/images/{name}"] = data
    return f"{signing.server.url}/images/{name}"


def test_a_download_lands_whole_and_checked(signing, downloader, tmp_path):
    url = _serve(signing, "whole")
    target = downloader.download("whole", url, len(DATA), SHA, tmp_path / "whole")
    assert target.read_bytes() == DATA
    assert list(tmp_path.iterdir()) == [target]


def test_a_cut_transfer_resumes_with_range_after_a_backoff(signing, downloader, tmp_path):
    url = _serve(signing, "cut")
    signing.server.cut_after["/images/cut"] = 1024 * 1024
    signing.server.requests.clear()
    target = downloader.download("cut", url, len(DATA), SHA, tmp_path / "cut")
    assert target.read_bytes() == DATA
    ranges = [r for p, r in signing.server.requests if p == "/images/cut"]
    assert ranges[0] is None
    assert ranges[1] is not None and ranges[1].startswith("bytes=")
    assert int(ranges[1][6:-1]) > 0
    assert downloader.waits == [0.5]


def test_server_errors_are_retried_with_growing_backoff(signing, downloader, tmp_path):
    url = _serve(signing, "flaky")
    signing.server.fail_next["/images/flaky"] = 503
    target = downloader.download("flaky", url, len(DATA), SHA, tmp_path / "flaky")
    assert target.read_bytes() == DATA
    assert downloader.waits == [0.5]


@pytest.mark.parametrize(
    ("size", "sha", "reason"),
    [
        (len(DATA), "0" * 128, "SHA-512 differs"),
        (len(DATA) - 1, SHA, "more than hv:size"),
        (len(DATA) + 1, SHA, "connection ended"),
    ],
    ids=["checksum-mismatch", "larger-than-announced", "truncated"],
)
def test_a_bad_download_fails_and_leaves_no_file(signing, downloader, tmp_path, size, sha, reason):
    url = _serve(signing, "bad")
    with pytest.raises(DownloadError, match=reason):
        downloader.download("bad", url, size, sha, tmp_path / "bad")
    assert list(tmp_path.iterdir()) == []


def test_a_missing_image_is_not_retried(signing, downloader, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        downloader.download("gone", f"{signing.server.url}/images/gone", 10, SHA, tmp_path / "g")
    assert downloader.waits == []
    assert list(tmp_path.iterdir()) == []


def test_no_download_starts_without_room_for_it(signing, downloader, tmp_path):
    url = _serve(signing, "huge")
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    with pytest.raises(NoSpaceError):
        downloader.download("huge", url, free + 1, SHA, tmp_path / "huge")
    assert list(tmp_path.iterdir()) == []
