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
        (len(DATA) + 1, SHA, "fewer than hv:size"),
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
        # Far beyond free space: other processes may free some meanwhile.
        downloader.download("huge", url, free + (10 << 30), SHA, tmp_path / "huge")
    assert list(tmp_path.iterdir()) == []


def test_a_drop_inside_the_first_mib_resumes_from_the_exact_byte_written(
    signing, downloader, tmp_path
):
    url = _serve(signing, "early")
    signing.server.cut_after["/images/early"] = 300 * 1024
    signing.server.requests.clear()
    target = downloader.download("early", url, len(DATA), SHA, tmp_path / "early")
    assert target.read_bytes() == DATA
    (_, first), (_, resumed) = [r for r in signing.server.requests if r[0] == "/images/early"]
    assert first is None and int(resumed[6:-1]) >= 256 * 1024  # not from zero


def test_a_run_that_gave_up_is_resumed_by_the_next_run(signing, tmp_path):
    url = _serve(signing, "next-run")
    once = fetch.Downloader(fetch.session(str(signing.ca_dir)), timeout_s=5, retries=0)
    signing.server.cut_after["/images/next-run"] = 2 * 1024 * 1024
    with pytest.raises(DownloadError, match="bytes kept: the next run resumes"):
        once.download("next-run", url, len(DATA), SHA, tmp_path / "next-run")
    kept = (tmp_path / "next-run.part").stat().st_size
    assert kept >= 2 * 1024 * 1024 - 64 * 1024
    signing.server.requests.clear()
    signing.server.if_ranges.clear()
    again = fetch.Downloader(fetch.session(str(signing.ca_dir)), timeout_s=5, retries=0)
    assert (
        again.download("next-run", url, len(DATA), SHA, tmp_path / "next-run").read_bytes() == DATA
    )
    assert signing.server.requests == [("/images/next-run", f"bytes={kept}-")]
    assert signing.server.if_ranges[0].startswith('"')  # the ETag it was started with
    assert sorted(p.name for p in tmp_path.iterdir()) == ["next-run"]


def test_a_file_changed_on_the_server_starts_over_instead_of_being_spliced(signing, tmp_path):
    url = _serve(signing, "changed")
    once = fetch.Downloader(fetch.session(str(signing.ca_dir)), timeout_s=5, retries=0)
    signing.server.cut_after["/images/changed"] = 1024 * 1024
    with pytest.raises(DownloadError):
        once.download("changed", url, len(DATA), SHA, tmp_path / "changed")
    new = os.urandom(len(DATA))
    _serve(signing, "changed", new)  # another ETag: If-Range makes the server send it whole
    got = once.download("changed", url, len(new), hashlib.sha512(new).hexdigest(),
                        tmp_path / "changed")  # fmt: skip
    assert got.read_bytes() == new


def test_a_download_killed_mid_transfer_is_resumed_after_the_crash(signing, tmp_path):
    import subprocess
    import sys
    import time

    url = _serve(signing, "crash")
    signing.server.stall_after["/images/crash"] = 1536 * 1024
    script = (
        "import sys; from pathlib import Path; from fedcloud_cloudkeeper import fetch\n"
        "d = fetch.Downloader(fetch.session(sys.argv[1]), timeout_s=120, retries=0)\n"
        "d.download('crash', sys.argv[2], int(sys.argv[3]), sys.argv[4], Path(sys.argv[5]))\n"
    )
    target = tmp_path / "crash"
    child = subprocess.Popen([sys.executable, "-c", script, str(signing.ca_dir), url,
                              str(len(DATA)), SHA, str(target)])  # fmt: skip
    part = tmp_path / "crash.part"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not part.exists() or part.stat().st_size < 1024 * 1024):
        time.sleep(0.1)
    child.kill()  # SIGKILL: no cleanup of any kind runs
    child.wait()
    kept = part.stat().st_size
    assert kept >= 1024 * 1024
    signing.server.requests.clear()
    resumed = fetch.Downloader(fetch.session(str(signing.ca_dir)), timeout_s=5, retries=0)
    assert resumed.download("crash", url, len(DATA), SHA, target).read_bytes() == DATA
    assert signing.server.requests == [("/images/crash", f"bytes={kept}-")]
