"""The job waiting for cloudkeeper-os to answer the requests it spooled.

``sync --wait`` ends when every request has a result, so the run's outcome
is what Glance now holds. It stops early, and says why, when the backend is
not alive: its heartbeat (written every few seconds, even mid-upload) is
older than ``DEAD_AFTER_S``, or it never wrote one. Every ``PROGRESS_S`` it
says what it is still waiting for and what the backend is doing.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable

from fedcloud_cloudkeeper.spool import RequestResult, Spool
from fedcloud_common.imagestatus import StatusFiles

# Six missed heartbeats (written every 5 s): the backend is gone.
DEAD_AFTER_S = 30.0
# A backend that never beat at all may still be starting.
START_GRACE_S = 60.0
PROGRESS_S = 30.0


@dataclasses.dataclass
class Waited:
    results: dict[str, RequestResult]  # by request id
    unanswered: list[str]
    problem: str = ""  # why the wait ended with requests unanswered


def wait_for_results(
    spool: Spool,
    status: StatusFiles,
    request_ids: list[str],
    timeout_s: float,
    poll_s: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> Waited:
    """Collect each request's result; stop at ``timeout_s`` or a dead backend."""
    started = last_said = clock()
    results: dict[str, RequestResult] = {}
    while True:
        for request_id in request_ids:
            if request_id not in results and (result := spool.result(request_id)):
                results[request_id] = result
                spool.collect(request_id)
        unanswered = [r for r in request_ids if r not in results]
        if not unanswered:
            return Waited(results, [])
        now = clock()
        beat, age = status.heartbeat()
        if age is None and now - started > START_GRACE_S:
            return Waited(
                results,
                unanswered,
                "cloudkeeper-os has never run on this spool: start it "
                "(systemctl start cloudkeeper-os)",
            )
        if age is not None and age > DEAD_AFTER_S:
            return Waited(
                results,
                unanswered,
                f"cloudkeeper-os is not running (no heartbeat for {age:.0f} s): see "
                "systemctl status cloudkeeper-os and its container's log; the requests stay "
                "queued for it",
            )
        doing = (beat.doing if beat else None) or "starting"
        if now - started >= timeout_s:
            return Waited(
                results,
                unanswered,
                f"{len(unanswered)} request(s) not applied by cloudkeeper-os within "
                f"{timeout_s:.0f} s (it is busy: {doing}); they stay queued for it",
            )
        if now - last_said >= PROGRESS_S:
            say(
                f"waiting for cloudkeeper-os: {len(results)} of {len(request_ids)} request(s) "
                f"answered after {now - started:.0f} s; it is at: {doing}"
            )
            last_said = now
        sleep(poll_s)
