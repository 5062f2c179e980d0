"""The spool's typed, versioned records, the backend's answers, and the wait for them.

These run the real Spool, Backend, StatusFiles and waiting code on files;
Glance is not needed to show what the backend answers for requests it can
never apply or cannot apply now, or how the job tells a dead backend from
a busy one. Real uploads are in test_glance_sync.py.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from fedcloud_cloudkeeper.backend import Backend
from fedcloud_cloudkeeper.config import Config
from fedcloud_cloudkeeper.job import Job
from fedcloud_cloudkeeper.spool import (
    SPOOL_VERSION,
    ReadyFile,
    RefusedRequestError,
    RequestResult,
    Spool,
    SyncList,
)
from fedcloud_cloudkeeper.waiting import DEAD_AFTER_S, wait_for_results
from fedcloud_common.imagestatus import ImageOutcome, ListStatus, StatusFiles


class NoGlance:
    """The backend's Glance when the cloud is down: every call fails to connect."""

    def managed(self, *_args: object) -> list[object]:
        raise ConnectionRefusedError(111, "Connection refused")


def test_a_request_round_trips_typed_and_versioned(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    ready = ReadyFile(path="/image_data/demo/a", disk_format="qcow2", content_digest="d")
    request_id = spool.put(SyncList(list="demo", content="{}", files={"a": ready}))
    (path,) = spool.pending()
    assert path.name == request_id
    on_disk = json.loads(path.read_text())
    assert on_disk["version"] == SPOOL_VERSION and on_disk["id"] == request_id
    loaded = spool.load(path)
    assert isinstance(loaded, SyncList) and loaded.files["a"] == ready


def test_a_request_from_before_versioning_is_read_not_misread(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.requests.mkdir(parents=True)
    old = spool.requests / "00000000000000000001-abcdef01.json"
    old.write_text(json.dumps({"kind": "sync-list", "list": "demo", "content": None,
                               "retire_reason": "list no longer subscribed",
                               "id": old.name}))  # fmt: skip
    loaded = spool.load(old)
    assert isinstance(loaded, SyncList)
    assert (loaded.version, loaded.retire_reason) == (0, "list no longer subscribed")


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ({"version": 99, "kind": "sync-list", "list": "demo"}, "written by a newer cloudkeeper"),
        ({"version": 1, "kind": "no-such-kind", "list": "demo"}, "not a valid request"),
        ({"version": 1, "kind": "sync-list", "list": "demo", "colour": "x"}, "colour"),
        ("{not json", "not a JSON request"),
    ],
    ids=["newer", "unknown-kind", "unknown-field", "not-json"],
)
def test_a_request_this_version_cannot_read_is_refused_with_why(
    tmp_path: Path, content: object, says: str
) -> None:
    spool = Spool(tmp_path)
    spool.requests.mkdir(parents=True)
    path = spool.requests / "x.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(RefusedRequestError, match=says):
        spool.load(path)


def test_refused_requests_are_set_aside_with_a_reason_and_answered(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.requests.mkdir(parents=True)
    (spool.requests / "a-garbage.json").write_text("{not json")
    newer = spool.requests / "b-newer.json"
    newer.write_text(
        json.dumps({"version": SPOOL_VERSION + 1, "kind": "sync-list", "list": "demo"})
    )
    counts = Backend(glance=None, spool=spool, state_dir=tmp_path / "state").drain()
    assert (counts["refused"], counts["failed"], counts["applied"]) == (2, 2, 0)
    assert spool.pending() == []
    assert "newer cloudkeeper" in (spool.failed / "b-newer.json.reason").read_text()
    answer = spool.result("b-newer.json")
    assert answer is not None and answer.outcome == "refused" and not answer.ok
    assert "newer cloudkeeper" in answer.reason


def test_a_cloud_that_is_down_keeps_the_request_and_answers_retrying(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    request_id = spool.put(SyncList(list="demo", content=None))
    counts = Backend(glance=NoGlance(), spool=spool, state_dir=tmp_path / "state").drain()
    assert counts["failed"] == 1 and counts["applied"] == 0
    assert [p.name for p in spool.pending()] == [request_id]  # nothing lost
    answer = spool.result(request_id)
    assert answer is not None and answer.outcome == "retrying"
    assert answer.reason.startswith("cannot reach the cloud")  # one line, with the fix


def test_the_wait_returns_each_result_and_collects_it(tmp_path: Path) -> None:
    spool, status = Spool(tmp_path), StatusFiles(tmp_path / "state")
    status.beat()
    failed = ImageOutcome(state="error", reason="Glance refused the upload", action="add")
    spool.answer(RequestResult(id="r1", list="demo", finished="now", outcome="failed",
                               images={"img": failed}))  # fmt: skip
    waited = wait_for_results(spool, status, ["r1"], timeout_s=5, sleep=lambda _s: None)
    assert waited.unanswered == [] and waited.problem == ""
    assert waited.results["r1"].problems() == ["img: Glance refused the upload"]
    assert spool.result("r1") is None  # collected


def test_a_dead_backend_is_found_in_seconds_not_at_the_timeout(tmp_path: Path) -> None:
    spool, status = Spool(tmp_path), StatusFiles(tmp_path / "state")
    status.beat(working_on="r1", doing="add img")
    stale = time.time() - DEAD_AFTER_S - 5
    os.utime(status.heartbeat_path, (stale, stale))
    clock = iter(range(0, 10_000, 1))
    waited = wait_for_results(
        spool, status, ["r1"], timeout_s=1800, clock=lambda: next(clock), sleep=lambda _s: None
    )
    assert waited.unanswered == ["r1"]
    assert waited.problem.startswith("cloudkeeper-os is not running (no heartbeat for 3")
    assert next(clock) < 10  # it did not wait out the 30 minutes


def test_a_busy_backend_is_waited_for_with_progress(tmp_path: Path) -> None:
    spool, status = Spool(tmp_path), StatusFiles(tmp_path / "state")
    said: list[str] = []
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds
        status.beat(working_on="r1", doing="add big-image (Image big): new in the list")
        if now[0] >= 45:
            spool.answer(RequestResult(id="r1", list="demo", finished="t", outcome="applied"))

    waited = wait_for_results(
        spool, status, ["r1"], 1800, poll_s=1.0, clock=lambda: now[0], sleep=sleep,
        say=said.append,
    )  # fmt: skip
    assert waited.results["r1"].ok and waited.problem == ""
    assert said == [
        "waiting for cloudkeeper-os: 0 of 1 request(s) answered after 30 s; "
        "it is at: add big-image (Image big): new in the list"
    ]


def test_the_status_files_have_one_typed_owner(tmp_path: Path) -> None:
    status = StatusFiles(tmp_path)
    status.record_lists({"a": ListStatus(state="ok", reason="list 1 verified", checked="t")})
    status.record_lists({"b": ListStatus(state="error", reason="no", checked="t")})
    assert set(status.lists()) == {"a", "b"}  # merged, not replaced
    image = ImageOutcome(state="ok", reason="new", action="add", glance_id="g", version="1")
    status.record_images("a", {"x": image}, "t1")
    assert status.images("a") == {"x": image.model_copy(update={"changed": "t1"})}
    kept = ImageOutcome(state="ok", reason="unchanged", action="keep", glance_id="g", version="1")
    status.record_images("a", {"x": kept}, "t2")
    assert status.images("a")["x"].changed == "t1"  # last changed when it was added
    assert status.heartbeat() == (None, None)
    status.beat(doing="add x")
    beat, age = status.heartbeat()
    assert beat is not None and beat.doing == "add x" and age is not None and age < 5


def test_cleanup_drops_cache_files_no_pending_request_needs(tmp_path: Path) -> None:
    class EmptyGlance:
        def managed(self) -> list[object]:
            return []

    config = Config(lists=(), state_dir=tmp_path / "state", spool_dir=tmp_path / "spool",
                    cache_dir=tmp_path / "cache")  # fmt: skip
    wanted = tmp_path / "cache" / "demo" / "img-1"
    leftover = tmp_path / "cache" / "demo" / "img-2.qcow2"
    resumable = tmp_path / "cache" / "demo" / "img-3.part"  # the next run resumes it
    abandoned = tmp_path / "cache" / "demo" / "img-4.part"  # nobody resumed it for weeks
    in_use = tmp_path / "cache" / "work" / "converting"
    for path in (wanted, leftover, resumable, abandoned, in_use):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    weeks_ago = time.time() - 14 * 24 * 3600
    os.utime(abandoned, (weeks_ago, weeks_ago))
    ready = ReadyFile(path=str(wanted), disk_format="raw", content_digest="d")
    Spool(config.spool_dir).put(SyncList(list="demo", files={"img-1": ready}))
    job = Job(config, EmptyGlance())  # type: ignore[arg-type]
    assert job.cleanup(dry_run=True).lists[0].reason.startswith("2 stale file")
    assert leftover.exists()
    job.cleanup()
    assert wanted.exists() and in_use.exists() and resumable.exists()
    assert not leftover.exists() and not abandoned.exists()
