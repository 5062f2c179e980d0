"""A realistic appliance for the status page and metrics tests.

A real History (SQLite) with days of runs, each closed by the real
``Execution.finish`` from the output the jobs print (their summary lines);
real image status files written through ``StatusFiles``; a retry pending.
Only the Docker engine is a stand-in: a few service containers in the
shape the Docker SDK returns them, one of them unhealthy.
"""

from __future__ import annotations

import dataclasses
import datetime
import types
from pathlib import Path

from fedcloud_appliance import status
from fedcloud_appliance.docker_run import LABEL_PREFIX
from fedcloud_appliance.execution import Execution, Trigger
from fedcloud_appliance.history import History
from fedcloud_appliance.jobspec import JobSpec
from fedcloud_appliance.scheduler import PendingRetry, Supervisor
from fedcloud_common.imagestatus import ImageOutcome, ListStatus, StatusFiles
from fedcloud_common.summary import format_summary

PROJECT = "fedcloud-appliance"
HOUR = datetime.timedelta(hours=1)
SPECS = [
    JobSpec("image-sync", "img", ("x",), "0 */4 * * *", 3 * HOUR),
    JobSpec("bdii-publish", "img", ("x",), "*/30 * * * *", HOUR),
    JobSpec("caso-extract", "img", ("x",), "10 * * * *", HOUR),
    JobSpec("apel-send", "img", ("x",), "40 */6 * * *", HOUR),
]
BDII_REASON = (
    "resource BDII unreachable at ldapi://%2Fvar%2Flib%2Ffedcloud-bdii%2Fslapd.sock: "
    "is the bdii service running? (systemctl status bdii)"
)
IMAGE = "c0a8e2bd-7a34-4f4c-9d7e-5c1b9a0e1f23"
GLANCE_ID = "5b6f0c8e-2d1a-4e5f-8a9b-0c1d2e3f4a5b"
VERSION = "2024.05.14"
BROKEN_IMAGE = "f3d2c1b0-a9e8-47d6-b5c4-a3b2c1d0e9f8"
SYNC_BYTES = (734_003_200, 1_048_576_000)  # downloaded, uploaded in each image-sync run


@dataclasses.dataclass
class Scene:
    supervisor: Supervisor
    appliance: status.Appliance
    docker: object
    now: datetime.datetime

    def collect(self) -> dict[str, object]:
        return status.collect(self.supervisor, self.docker, PROJECT, self.appliance)


def ran(
    history: History,
    job: str,
    started: datetime.datetime,
    took_s: float,
    output: str,
    exit_code: int = 0,
    trigger: Trigger = "schedule",
) -> Execution:
    """One finished run, recorded as the supervisor records it."""
    record = Execution(job=job, trigger=trigger, started=started, container=f"{job}-{started:%H%M}")
    record.finish(exit_code, output)
    record.finished = started + datetime.timedelta(seconds=took_s)
    history.end(history.begin(record), record)
    return record


def summary(job: str, outcome: str, took_s: float, reason: str = "", **counts: object) -> str:
    return format_summary(job, outcome, counts, took_s, reason) + "\n"


def build(tmp_path: Path, now: datetime.datetime | None = None) -> Scene:
    now = now or datetime.datetime.now(datetime.UTC)
    history = History(tmp_path / "state" / "history.sqlite")
    supervisor = Supervisor(SPECS, _never_run, history, tmp_path / "state" / "locks")

    sync_start = now.replace(minute=0, second=0, microsecond=0) - 12 * 4 * HOUR
    for i in range(12):
        took = 240 + 47 * (i % 5) + (420 if i == 7 else 0)
        downloaded, uploaded = SYNC_BYTES
        ran(history, "image-sync", sync_start + i * 4 * HOUR, took, summary(
            "cloudkeeper-sync", "ok", took, lists=2, lists_failed=0, planned=1, applied=1,
            failed=0, errors=0, downloaded_bytes=downloaded, uploaded_bytes=uploaded,
        ))  # fmt: skip
    # A sync in progress for three minutes.
    history.begin(Execution("image-sync", "schedule", now - datetime.timedelta(minutes=3)))

    publish_start = now - 20 * datetime.timedelta(minutes=30)
    for i in range(19):
        took = 2.1 + (i % 4) * 0.6
        ran(history, "bdii-publish", publish_start + i * datetime.timedelta(minutes=30), took,
            summary("bdii-publish", "ok", took, entries=1234, added=0, modified=2, deleted=0,
                    delayed=0, unchanged=1232, deferred=0, failed=0))  # fmt: skip
    ran(history, "bdii-publish", now - datetime.timedelta(minutes=6), 0.4,
        "bdii-publish: connecting to the resource BDII\n"
        + summary("bdii-publish", "failed", 0.4, BDII_REASON), exit_code=1)  # fmt: skip
    supervisor.retries["bdii-publish"] = PendingRetry(1, 3, now + datetime.timedelta(minutes=4))

    for i in range(10):
        started = now - (10 - i) * HOUR
        ran(history, "caso-extract", started, 31 + i, summary(
            "caso-extract", "ok", 31 + i, projects=3, records=412 + i, errors=0,
            window_from=(started - HOUR).isoformat(), window_to=started.isoformat(),
            watermark=started.isoformat(),
        ))  # fmt: skip
    for i, (sent, kept) in enumerate([(3, 0), (2, 1), (4, 0), (3, 0)]):
        outcome = "partial" if kept else "ok"
        reason = "1 message kept: the endpoint answered 503; the next run retries" if kept else ""
        ran(history, "apel-send", now - (4 - i) * 6 * HOUR, 4.5, summary(
            "apel-send", outcome, 4.5, reason, sent=sent, kept=kept, quarantined=0,
            stale_locks=0, errors=int(bool(kept)),
        ), exit_code=int(bool(kept)))  # fmt: skip

    state_dir = tmp_path / "spool" / "state"
    _image_status(StatusFiles(state_dir), now)
    appliance = status.Appliance(
        site="FEDCLOUD-DEMO",
        host="cloud.example.org",
        image_state_dir=state_dir,
        image_lists=("egi-basic", "vo-demo", "fresh-list"),
    )
    return Scene(supervisor, appliance, FakeDocker(), now)


def _image_status(files: StatusFiles, now: datetime.datetime) -> None:
    iso = (now - datetime.timedelta(minutes=50)).strftime("%Y-%m-%dT%H:%M:%SZ")
    files.record_lists(
        {
            "egi-basic": ListStatus(state="ok", reason="verified, 2 images", checked=iso),
            "vo-demo": ListStatus(
                state="error",
                reason="signature not trusted: the signer is not /DC=EU/DC=EGI/CN=endorser",
                checked=iso,
                errors=["check images.lists[vo-demo].endorser (dn, ca)"],
            ),
        }
    )
    files.record_images(
        "egi-basic",
        {
            IMAGE: ImageOutcome(
                state="ok", reason="added", action="add", glance_id=GLANCE_ID, version=VERSION
            ),
            BROKEN_IMAGE: ImageOutcome(
                state="error",
                reason="SHA-512 mismatch: the download is not the image the list describes",
                action="add",
            ),
        },
        iso,
    )
    files.beat()


def _never_run(spec: JobSpec, record: Execution) -> Execution:
    raise AssertionError("the scene's jobs are recorded, never run")


# The Docker engine's answer, in the SDK's shape: services and their health.
SERVICES = {
    "supervisor": ("running", "healthy"),
    "cloudkeeper-os": ("running", "healthy"),
    "resource-bdii": ("running", "healthy"),
    "site-bdii": ("running", "unhealthy"),
}


class FakeDocker:
    def __init__(self, services: dict[str, tuple[str, str]] | None = None) -> None:
        self.containers = types.SimpleNamespace(list=self._list)
        self.services = SERVICES if services is None else services

    def _list(self, all: bool, filters: dict[str, str]) -> list[object]:
        assert all and filters == {"label": f"{LABEL_PREFIX}.role=service"}
        return [
            types.SimpleNamespace(
                name=f"{PROJECT}-{service}-1",
                labels={
                    "com.docker.compose.project": PROJECT,
                    f"{LABEL_PREFIX}.role": "service",
                    f"{LABEL_PREFIX}.service": service,
                },
                attrs={"State": {"Status": state, "Health": {"Status": health}}},
            )
            for service, (state, health) in self.services.items()
        ]
