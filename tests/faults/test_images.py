"""Faults of image replication: lists, downloads, formats, the spool, the backend, Glance.

Downloads run against the HTTPS list/image server (tests/support/listserver.py),
formats through the real qemu-img, the spool and the backend on real files,
the backend's cloud through the real openstacksdk. The cases marked e2e run
against the demo cloud's real Keystone and Glance and check that Glance is
exactly as it was (or the old version still serves).
"""

from __future__ import annotations

import datetime
import errno
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fedcloud_cloudkeeper import fetch, formats
from fedcloud_cloudkeeper.backend import Backend
from fedcloud_cloudkeeper.errors import DownloadError, NoSpaceError, UnsupportedFormatError
from fedcloud_cloudkeeper.glance import Glance, connector
from fedcloud_cloudkeeper.spool import Spool, SyncList
from fedcloud_cloudkeeper.waiting import wait_for_results
from fedcloud_common.faults import explain
from fedcloud_common.imagestatus import StatusFiles
from tests.faults.conftest import clouds_yaml_via, qcow2
from tests.support.listserver import DATE, sign
from tests.support.testca import TestCA

DATA = os.urandom(3 * 1024 * 1024 + 17)
SHA = hashlib.sha512(DATA).hexdigest()


def _serve(signing, name: str, data: bytes = DATA) -> str:
    signing.server.files[f"/images/{name}"] = data
    return f"{signing.server.url}/images/{name}"


def _downloader(signing, **options) -> fetch.Downloader:
    return fetch.Downloader(fetch.session(str(signing.ca_dir)), **({"timeout_s": 5, "retries": 0}
                                                                    | options))  # fmt: skip


def _ranges(signing, name: str) -> list[str | None]:
    return [r for p, r in signing.server.requests if p == f"/images/{name}"]


# -- downloads --------------------------------------------------------------


def test_a_drop_inside_the_first_mib_keeps_the_bytes_and_says_the_next_run_resumes(
    signing, tmp_path
):
    url = _serve(signing, "early")
    signing.server.cut_after["/images/early"] = 300 * 1024
    with pytest.raises(DownloadError, match="bytes kept: the next run resumes"):
        _downloader(signing).download("early", url, len(DATA), SHA, tmp_path / "early")
    kept = (tmp_path / "early.part").stat().st_size
    assert kept >= 256 * 1024  # the partial chunk is kept, not thrown away
    assert not (tmp_path / "early").exists()  # no half file promoted
    signing.server.requests.clear()
    got = _downloader(signing).download("early", url, len(DATA), SHA, tmp_path / "early")
    assert got.read_bytes() == DATA
    assert _ranges(signing, "early") == [f"bytes={kept}-"]


def test_a_crash_mid_download_keeps_the_part_file_and_the_next_run_resumes_from_its_last_byte(
    signing, tmp_path
):
    url = _serve(signing, "crash")
    signing.server.stall_after["/images/crash"] = 1536 * 1024
    script = (
        "import sys; from pathlib import Path; from fedcloud_cloudkeeper import fetch\n"
        "d = fetch.Downloader(fetch.session(sys.argv[1]), timeout_s=120, retries=0)\n"
        "d.download('crash', sys.argv[2], int(sys.argv[3]), sys.argv[4], Path(sys.argv[5]))\n"
    )
    target, part = tmp_path / "crash", tmp_path / "crash.part"
    child = subprocess.Popen([sys.executable, "-c", script, str(signing.ca_dir), url,
                              str(len(DATA)), SHA, str(target)])  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not part.exists() or part.stat().st_size < 1 << 20):
        time.sleep(0.1)
    child.kill()  # SIGKILL: no cleanup of any kind runs
    child.wait()
    kept = part.stat().st_size
    assert kept >= 1 << 20 and not target.exists()
    signing.server.requests.clear()
    assert _downloader(signing).download("crash", url, len(DATA), SHA, target).read_bytes() == DATA
    assert _ranges(signing, "crash") == [f"bytes={kept}-"]  # the exact byte, not zero


@pytest.mark.parametrize(
    ("size", "sha", "reason"),
    [
        (len(DATA), "0" * 128, "SHA-512 differs from sl:checksum:sha512"),
        (len(DATA) + 1, SHA, "fewer than hv:size"),
        (len(DATA) - 1, SHA, "more than hv:size"),
    ],
    ids=["checksum-mismatch", "truncated", "oversized"],
)
def test_wrong_bytes_leave_no_file_and_say_what_was_wrong(signing, tmp_path, size, sha, reason):
    url = _serve(signing, "bad")
    with pytest.raises(DownloadError, match=reason) as raised:
        _downloader(signing).download("bad", url, size, sha, tmp_path / "bad")
    assert "\n" not in str(raised.value)
    assert list(tmp_path.iterdir()) == []  # nothing promoted, nothing to resume wrongly


def test_a_missing_image_is_not_retried_leaves_no_file_and_says_http_404(signing, tmp_path):
    waits: list[float] = []
    downloader = _downloader(signing, retries=3, sleep=waits.append)
    with pytest.raises(DownloadError, match="HTTP 404"):
        downloader.download("gone", f"{signing.server.url}/images/gone", 10, SHA, tmp_path / "g")
    assert waits == [] and list(tmp_path.iterdir()) == []


def test_an_image_server_that_hangs_is_given_up_at_the_timeout_keeping_the_bytes_received(
    signing, tmp_path
):
    url = _serve(signing, "hang")
    signing.server.stall_after["/images/hang"] = 512 * 1024
    began = time.monotonic()
    with pytest.raises(DownloadError, match="bytes kept: the next run resumes") as raised:
        _downloader(signing, timeout_s=2).download("hang", url, len(DATA), SHA, tmp_path / "hang")
    assert time.monotonic() - began < 20
    assert "Timeout" in str(raised.value) or "timed out" in str(raised.value)
    assert (tmp_path / "hang.part").stat().st_size > 0 and not (tmp_path / "hang").exists()


@pytest.fixture
def small_disk(tmp_path):
    """A real 4 MiB file system (tmpfs): it really fills up."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_disk_filling_up_mid_download_keeps_the_part_and_says_disk_full(signing, small_disk):
    url = _serve(signing, "full")
    signing.server.cut_after["/images/full"] = 1 << 20
    filler = small_disk / "other-data"

    def someone_fills_the_disk(_seconds: float) -> None:  # during the backoff
        with filler.open("wb") as out:
            try:
                while True:
                    out.write(b"\0" * 65536)
            except OSError:
                pass

    downloader = _downloader(signing, retries=1, backoff_s=0, sleep=someone_fills_the_disk)
    with pytest.raises(OSError) as raised:
        downloader.download("full", url, len(DATA), SHA, small_disk / "full")
    assert raised.value.errno == errno.ENOSPC
    assert explain(raised.value).startswith("disk full")
    assert "free space there" in explain(raised.value)
    kept = (small_disk / "full.part").stat().st_size
    assert kept >= 512 * 1024 and not (small_disk / "full").exists()
    filler.unlink()  # the operator frees space: the next run resumes, not restarts
    signing.server.requests.clear()
    assert _downloader(signing).download("full", url, len(DATA), SHA,
                                         small_disk / "full").read_bytes() == DATA  # fmt: skip
    assert _ranges(signing, "full")[0] == f"bytes={kept}-"


def test_no_download_starts_on_a_disk_without_room_and_the_reason_names_the_space(
    signing, small_disk
):
    url = _serve(signing, "huge", DATA + DATA)  # 6 MiB for a 4 MiB disk
    with pytest.raises(NoSpaceError, match=r"bytes needed in .*only \d+ free"):
        _downloader(signing).download("huge", url, 2 * len(DATA), SHA, small_disk / "huge")
    assert list(small_disk.iterdir()) == []


# -- formats ----------------------------------------------------------------


def _qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


def test_a_qcow2_with_a_backing_file_is_refused_removed_and_the_host_file_untouched(tmp_path):
    secret = tmp_path / "host-file.raw"
    secret.write_bytes(b"host secret\n" + b"\0" * (1 << 20))
    before = secret.read_bytes()
    overlay = tmp_path / "download"
    _qemu_img("create", "-f", "qcow2", "-b", str(secret), "-F", "raw", str(overlay), "1M")
    with pytest.raises(UnsupportedFormatError, match=r"backing file \(.*host-file\.raw\)"):
        formats.prepare(overlay, ("raw",), "img")
    assert not overlay.exists() and secret.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name != "host-file.raw"]  # no converted copy


def test_a_vmdk_descriptor_naming_an_external_extent_is_refused_and_removed(tmp_path):
    outside = tmp_path / "elsewhere" / "disk-flat.vmdk"
    outside.parent.mkdir()
    outside.write_bytes(b"\0" * (1 << 20))
    descriptor = tmp_path / "download"
    descriptor.write_text(
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"
        f'createType="monolithicFlat"\n\nRW 2048 FLAT "{outside}" 0\n\n'
        'ddb.virtualHWVersion = "4"\nddb.adapterType = "ide"\n'
    )
    with pytest.raises(UnsupportedFormatError, match="external extent"):
        formats.prepare(descriptor, ("qcow2",), "img")
    assert not descriptor.exists() and outside.exists()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["disk-flat.vmdk", "elsewhere"]


def test_bytes_of_no_known_format_are_refused_not_uploaded_as_raw(tmp_path):
    page = tmp_path / "download"
    page.write_bytes(b"<html><body>502 Bad Gateway</body></html>\n" * 100)
    with pytest.raises(UnsupportedFormatError, match="must say hv:format raw"):
        formats.prepare(page, ("qcow2", "raw"), "img", declared="qcow2")
    assert not page.exists()


# -- the spool and the backend ------------------------------------------------


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (json.dumps({"version": 99, "kind": "sync-list", "list": "demo"}),
         "written by a newer cloudkeeper"),
        ("{not json", "not a JSON request"),
    ],
    ids=["newer-spool-version", "corrupt-spool-file"],
)  # fmt: skip
def test_an_unreadable_spool_request_is_set_aside_with_its_reason_and_the_rest_applied(
    tmp_path, content, says
):
    spool = Spool(tmp_path / "spool")
    spool.requests.mkdir(parents=True)
    (spool.requests / "a-bad.json").write_text(content)
    good = spool.put(SyncList(list="other", content=None, retire_reason="list unsubscribed"))

    class EmptyCloud:  # the cloud has nothing of list "other": retiring it is a no-op
        def managed(self, *_args):
            return []

    counts = Backend(EmptyCloud(), spool, tmp_path / "state").drain()
    assert counts["refused"] == 1
    assert (spool.failed / "a-bad.json").read_text() == content  # kept as it was, not misread
    assert says in (spool.failed / "a-bad.json.reason").read_text()
    answer = spool.result("a-bad.json")
    assert answer is not None and answer.outcome == "refused" and says in answer.reason
    assert spool.result(good).ok and spool.pending() == []


def test_a_dead_backend_is_found_in_seconds_and_its_requests_stay_queued(tmp_path):
    spool, status = Spool(tmp_path / "spool"), StatusFiles(tmp_path / "state")
    request = spool.put(SyncList(list="demo", content=None, retire_reason="x"))
    status.beat(working_on=request, doing="add img")
    stale = time.time() - 60
    os.utime(status.heartbeat_path, (stale, stale))  # its last beat, a minute ago
    began = time.monotonic()
    # Bounded so a broken check fails here instead of waiting its 30 minutes.
    waited = wait_for_results(spool, status, [request], timeout_s=25, say=lambda _l: None)
    assert time.monotonic() - began < 10  # found, not waited out
    assert waited.unanswered == [request]
    assert waited.problem.startswith("cloudkeeper-os is not running (no heartbeat for")
    assert [p.name for p in spool.pending()] == [request]


def _clouds_yaml(path: Path, auth_url: str, **extra: object) -> Path:
    lines = [
        "clouds:", "  site:", "    auth:", f"      auth_url: {auth_url}",
        "      username: fedcloud", "      password: pw", "      project_name: ops",
        "      user_domain_name: Default", "      project_domain_name: Default",
        "    region_name: RegionOne", "    identity_api_version: 3",
    ] + [f"    {key}: {value}" for key, value in extra.items()]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


def _backend_against(tmp_path: Path, clouds_yaml: Path) -> tuple[Spool, str, dict]:
    spool = Spool(tmp_path / "spool")
    request = spool.put(SyncList(list="demo", content=None, retire_reason="list unsubscribed"))
    glance = Glance(connector("site", clouds_yaml), "ck-fault")
    counts = Backend(glance, spool, tmp_path / "state").drain()
    return spool, request, counts


def test_keystone_unreachable_keeps_the_request_queued_and_answers_cannot_reach_the_cloud(
    tmp_path,
):
    clouds = _clouds_yaml(tmp_path / "clouds.yaml", "http://127.0.0.1:1/v3")
    spool, request, counts = _backend_against(tmp_path, clouds)
    assert counts["failed"] == 1 and counts["applied"] == 0
    assert [p.name for p in spool.pending()] == [request]  # nothing lost
    answer = spool.result(request)
    assert answer.outcome == "retrying"
    assert answer.reason.startswith("cannot reach the cloud: is it up, and is openstack.auth_url")


def test_a_keystone_with_an_untrusted_certificate_keeps_the_request_and_names_the_ca_bundle(
    signing, tmp_path
):
    # The list server's certificate is from the test CA, which nothing here trusts.
    clouds = _clouds_yaml(tmp_path / "clouds.yaml", f"{signing.server.url}/v3")
    spool, request, counts = _backend_against(tmp_path, clouds)
    assert counts["failed"] == 1 and [p.name for p in spool.pending()] == [request]
    answer = spool.result(request)
    assert answer.outcome == "retrying"
    assert answer.reason.startswith("TLS verification failed: check openstack.ca_bundle")


@pytest.fixture
def silent_server():
    """A TCP server that accepts connections and never answers: a hung Keystone."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    for connection in held:
        connection.close()
    listener.close()


def test_a_hung_keystone_is_given_up_at_the_api_timeout_keeping_the_request(
    silent_server, tmp_path
):
    clouds = _clouds_yaml(tmp_path / "clouds.yaml", f"http://127.0.0.1:{silent_server}/v3",
                          api_timeout=2)  # fmt: skip
    began = time.monotonic()
    spool, request, counts = _backend_against(tmp_path, clouds)
    assert time.monotonic() - began < 30
    assert counts["failed"] == 1 and [p.name for p in spool.pending()] == [request]
    answer = spool.result(request)
    assert answer.outcome == "retrying" and answer.reason.startswith("timed out")


# -- against the demo cloud's real Keystone and Glance ------------------------------


def _list_error(site) -> str:
    return site.status()["lists.json"]["demo"]["reason"]


def _unchanged(site) -> None:
    assert site.snapshot() == site.before, "Glance changed"
    assert site.cached_files() == [], "a downloaded file was left behind"


@pytest.mark.e2e
def test_the_list_server_down_leaves_glance_unchanged_and_the_list_in_error_with_why(site):
    down = site.config.lists[0].model_copy(update={"url": "https://localhost:1/lists/x"})
    report, _ = site.sync(site.config.model_copy(update={"lists": (down,)}))
    assert report.failed and "ConnectionError" in report.lists[0].reason
    _unchanged(site)
    assert site.status()["lists.json"]["demo"]["state"] == "error"
    assert "ConnectionError" in _list_error(site)


@pytest.mark.e2e
def test_a_list_answering_404_leaves_glance_unchanged_and_says_http_404(site):
    del site.signing.server.files[site.list_path]
    report, _ = site.sync()
    assert report.failed and "404" in report.lists[0].reason
    _unchanged(site)
    assert "404" in _list_error(site)


@pytest.mark.e2e
def test_a_list_signed_by_an_untrusted_ca_leaves_glance_unchanged_and_says_untrusted(site):
    rogue = TestCA(site.tmp / "rogue", dn="/DC=org/DC=example/CN=Rogue CA")
    signer = rogue.issue("endorser", "/DC=org/DC=example/O=Endorsers/CN=appdb.example.org")
    from tests.support.listserver import image_list

    site.signing.server.files[site.list_path] = sign(json.dumps(image_list([])).encode(), *signer)
    report, _ = site.sync()
    assert report.failed and "unable to get local issuer certificate" in report.lists[0].reason
    _unchanged(site)  # the empty list would have retired "base"
    assert "not trusted" in _list_error(site)


@pytest.mark.e2e
def test_an_expired_list_leaves_glance_unchanged_and_says_when_it_expired(site):
    yesterday = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    site.publish([], **{"dc:date:expires": yesterday.strftime(DATE)})
    report, _ = site.sync()
    assert report.failed and "expired at" in report.lists[0].reason
    _unchanged(site)
    assert "expired at" in _list_error(site)


@pytest.mark.e2e
def test_a_new_version_failing_its_checksum_keeps_the_old_version_serving_and_says_why(site):
    entry = site.entry("base", qcow2(site.tmp, "v2-bad-sum"), version="2.0")
    entry["hv:image"]["sl:checksum:sha512"] = hashlib.sha512(b"other").hexdigest()
    site.publish([entry])
    report, _ = site.sync()
    assert report.failed
    assert "SHA-512 differs" in " ".join(report.lists[0].errors)
    _unchanged(site)


@pytest.mark.e2e
def test_a_new_version_that_is_a_qcow2_on_a_backing_file_keeps_the_old_version_and_says_why(
    site,
):
    host_file = site.tmp / "etc-shadow.raw"
    host_file.write_bytes(b"root:secret\n" + b"\0" * 65536)
    overlay = site.tmp / "overlay.qcow2"
    _qemu_img("create", "-f", "qcow2", "-b", str(host_file), "-F", "raw", str(overlay), "1M")
    site.publish([site.entry("base", overlay.read_bytes(), version="2.0")])
    report, _ = site.sync()
    said = " ".join([report.lists[0].reason, *report.lists[0].errors])
    assert "backing file" in said
    _unchanged(site)


@pytest.mark.e2e
def test_glance_down_mid_upload_keeps_the_old_version_serving_and_records_http_503(
    site, demo_cloud, glance_faults
):
    data = qcow2(site.tmp, "v2-503")
    site.publish([site.entry("base", data, version="2.0")])
    clouds = clouds_yaml_via(demo_cloud, glance_faults, site.tmp / "via-proxy.yaml")
    glance_faults.fail_upload = 503
    _, drained = site.sync(site.config.model_copy(update={"clouds_yaml": clouds}))
    assert glance_faults.upload_started.is_set() and drained["failed"] == 1
    assert site.snapshot() == site.before  # the old version serves, no half image
    image = site.status()["images-demo.json"]["images"]["base"]
    assert image["state"] == "error" and "HTTP 503" in image["reason"]
    assert "Glance upload failed" in image["reason"]


@pytest.mark.e2e
def test_a_wrong_password_keeps_the_request_queued_and_names_the_password_file(site, demo_cloud):
    wrong = site.tmp / "wrong-password.yaml"
    text = demo_cloud.clouds_yaml.read_text()
    wrong.write_text(text.replace("password: fedcloudpass", "password: not-the-password"))
    assert "not-the-password" in wrong.read_text()
    spool = Spool(site.tmp / "spool")
    request = spool.put(SyncList(list="demo", content=None, retire_reason="list unsubscribed"))
    glance = Glance(connector("fedcloud-demo", wrong), site.tag)
    counts = Backend(glance, spool, site.tmp / "state").drain()
    assert counts["failed"] == 1 and [p.name for p in spool.pending()] == [request]
    answer = spool.result(request)
    assert answer.outcome == "retrying"
    assert answer.reason.startswith("OpenStack refused the credentials (401)")
    assert "openstack.password_file" in answer.reason
    assert site.snapshot() == site.before  # "base" was not retired
