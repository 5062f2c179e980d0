"""cloudkeeper-os: the long-running backend, the only writer to Glance.

It consumes the spool oldest request first. For each list it plans again
against Glance as it is now (so a request replayed after a crash, or one
overtaken by events, still does the right thing), then applies the plan:
clear unfinished uploads, upload new images and new versions, update
metadata in place, and only then retire what is gone -- a new version is
active before the old one disappears. Each request is answered with a
result (what was applied, what failed and why) that the waiting job reads;
each list's images are recorded in the status files ``cloudkeeper status``
shows. A heartbeat, written every few seconds from its own thread, tells
the job and the container's health check that the backend is alive and
what it is doing.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fedcloud_cloudkeeper import adopt, formats, imagelist, vmcatcher
from fedcloud_cloudkeeper.config import Config
from fedcloud_cloudkeeper.errors import CloudkeeperError, DownloadError
from fedcloud_cloudkeeper.glance import Glance
from fedcloud_cloudkeeper.plan import Action, plan, targets
from fedcloud_cloudkeeper.spool import (
    ReadyFile,
    RefusedRequestError,
    RequestResult,
    Spool,
    SyncList,
    VmcatcherEvent,
)
from fedcloud_common.faults import explain
from fedcloud_common.imagestatus import ImageOutcome, StatusFiles

LOG = logging.getLogger(__name__)
HOOK_TIMEOUT_S = 10
# How often the heartbeat is written; the job calls the backend dead after
# a few of these pass without one (fedcloud_cloudkeeper.waiting).
HEARTBEAT_S = 5.0
# Longest wait before retrying a request Glance or Keystone refused to take.
RETRY_MAX_S = 300.0
Outcomes = dict[str, ImageOutcome]


class Backend:
    def __init__(
        self,
        glance: Glance,
        spool: Spool,
        state_dir: Path,
        event_hook: str | None = None,
        clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
        accepted_formats: tuple[str, ...] = ("qcow2", "raw"),
        work_dir: Path | None = None,
        vo_projects: dict[str, str] | None = None,
    ) -> None:
        self.glance = glance
        self.spool = spool
        self.status = StatusFiles(state_dir)
        self.doing: tuple[str | None, str | None] = (None, None)  # request, action
        self.uploaded = 0  # image bytes sent to Glance, for the request in progress
        self.event_hook = event_hook
        self.clock = clock
        self.accepted_formats = accepted_formats
        self.work_dir = Path(work_dir or Path(state_dir) / "work")
        self.vo_projects = vo_projects or {}

    @classmethod
    def from_config(cls, config: Config, glance: Glance) -> Backend:
        return cls(
            glance,
            Spool(config.spool_dir),
            config.state_dir,
            config.event_hook,
            accepted_formats=config.accepted_formats,
            work_dir=config.cache_dir / "work",
            vo_projects=config.vo_projects,
        )

    def drain(self) -> dict[str, int]:
        """Apply every pending request and answer each; counts of what happened.

        ``applied`` counts the images whose change took effect (and each verb
        that did; ``unchanged`` those already right); ``failed`` the images
        and requests that did not, which the results explain. A request
        Glance or Keystone could not take stays queued for the next attempt,
        and the drain stops there: the requests behind it are for the same
        cloud.
        """
        counts = {"requests": 0, "applied": 0, "failed": 0, "pending": 0, "refused": 0}
        counts["uploaded_bytes"] = 0
        self.spool.prune_results()
        for path in self.spool.pending():
            try:
                request = self.spool.load(path)
            except RefusedRequestError as error:
                self._refuse(path, "?", str(error), counts)
                continue
            counts["requests"] += 1
            self.doing = (request.id, None)
            self.uploaded = 0
            try:
                outcomes, made = self.process(request)
            except CloudkeeperError as error:  # a request we can never apply
                self._refuse(path, request.list, str(error), counts)
                continue
            except Exception as error:  # Glance or Keystone unreachable: retry later
                reason = explain(error)
                LOG.error("request %s left for the next attempt: %s", path.name, reason)
                counts["failed"] += 1
                self.spool.answer(
                    RequestResult(
                        id=request.id,
                        list=request.list,
                        finished=self._now(),
                        outcome="retrying",
                        reason=f"{reason}; cloudkeeper-os retries the request",
                    )
                )
                break
            finally:
                self.doing = (None, None)
            for outcome in outcomes.values():
                if outcome.state == "ok" and outcome.action == "keep":
                    counts["unchanged"] = counts.get("unchanged", 0) + 1
                elif outcome.state == "ok":  # a change that took effect
                    counts["applied"] += 1
                    counts[outcome.action] = counts.get(outcome.action, 0) + 1
                else:
                    counts["pending" if outcome.state == "pending" else "failed"] += 1
            bad = [o for o in outcomes.values() if o.state != "ok"]
            self.spool.answer(
                RequestResult(
                    id=request.id,
                    list=request.list,
                    finished=self._now(),
                    outcome="failed" if bad else "applied",
                    reason=f"{len(bad)} of {len(outcomes)} image(s) not applied" if bad else "",
                    images=outcomes,
                    uploaded_bytes=self.uploaded,
                )
            )
            counts["uploaded_bytes"] += self.uploaded
            self._remove_files(made)
            self.spool.done(path)
        return counts

    def _refuse(self, path: Path, name: str, reason: str, counts: dict[str, int]) -> None:
        LOG.error("request %s refused: %s", path.name, reason)
        self.spool.reject(path, reason)
        self.spool.answer(
            RequestResult(
                id=path.name, list=name, finished=self._now(), outcome="refused", reason=reason
            )
        )
        counts["refused"] += 1
        counts["failed"] += 1

    def serve(self, poll_s: float = 5.0, stop: Callable[[], bool] = lambda: False) -> None:
        """Apply requests as they come until ``stop``; retry refusals with backoff."""
        LOG.info("cloudkeeper-os: watching %s", self.spool.requests)
        stopped = threading.Event()
        beating = threading.Thread(target=self._beat, args=(stopped,), daemon=True)
        beating.start()
        wait, retries = poll_s, 0
        try:
            while not stop():
                wait = poll_s
                if self.spool.pending():
                    counts = self.drain()
                    LOG.info("cloudkeeper-os: %s", counts)
                    retried = self.spool.pending() and counts["failed"]
                    retries = retries + 1 if retried else 0
                    if retries:
                        wait = min(poll_s * 2**retries, RETRY_MAX_S)
                        LOG.warning("cloudkeeper-os: next attempt in %.0f s", wait)
                deadline = time.monotonic() + wait
                while not stop() and time.monotonic() < deadline:
                    time.sleep(min(poll_s, 1.0))
        finally:
            stopped.set()

    def _beat(self, stopped: threading.Event) -> None:
        """The heartbeat: alive, and what it is doing (a long upload included)."""
        while True:
            try:
                self.status.beat(*self.doing)
            except OSError as error:  # a full disk must not kill the backend
                LOG.warning("heartbeat not written: %s", error)
            if stopped.wait(HEARTBEAT_S):
                return

    def process(self, request: SyncList | VmcatcherEvent) -> tuple[Outcomes, list[ReadyFile]]:
        """Plan and apply one request; the outcomes and the files it leaves to remove."""
        if isinstance(request, VmcatcherEvent):
            return self._process_vmcatcher(request)
        name = request.list
        if request.retire_old:  # cleanup --retire-old: the old tools' images, not a list's
            return adopt.retire_orphans(self.glance, request.retire_old), []
        wanted = None
        retire_reason = request.retire_reason
        adopted: Outcomes = {}
        managed = self.glance.managed(name)
        if request.content is not None:
            trusted = imagelist.parse(request.content.encode(), f"{name} (spooled)")
            if trusted.expired(self.clock()):
                retire_reason = "list expired"
            else:
                wanted = targets(trusted, name, request.project, request.prefix)
                if request.adopt:
                    wanted, adopted = adopt.take_over(
                        self.glance,
                        request.adopt,
                        name,
                        trusted.identifier,
                        wanted,
                        managed,
                        request.project,
                    )
                    managed = self.glance.managed(name) if adopted else managed
        actions = plan(wanted, managed, self.clock(), retire_reason)
        results = self._execute(name, actions, request.files, request.download_errors)
        results = adopt.merged(adopted, results)
        self._record(name, results)
        return results, list(request.files.values())

    def _process_vmcatcher(self, request: VmcatcherEvent) -> tuple[Outcomes, list[ReadyFile]]:
        """One image from vmcatcher's cache: validated like a list entry, then planned alone."""
        name, now = request.list, self.clock()
        try:
            document = vmcatcher.as_image_list(request.model_dump(), now)
            event = imagelist.parse(document, f"vmcatcher ({name})")
        except CloudkeeperError as error:
            results = {"(event)": ImageOutcome(state="error", reason=str(error), action="refuse")}
            self._record(name, results, merge=True)
            return results, []
        (image,) = event.images
        managed = [m for m in self.glance.managed(name) if m.identifier == image.identifier]
        wanted: dict[str, Any] = {}
        files: dict[str, ReadyFile] = {}
        if request.event in vmcatcher.AVAILABLE:
            wanted = targets(event, name, self.vo_projects.get(event.vo or ""), "")
        actions = plan(wanted, managed, now, f"vmcatcher {request.event}")
        if any(a.verb in ("add", "replace") for a in actions):
            try:
                files[image.identifier] = self._vmcatcher_file(image, Path(request.file or ""))
            except CloudkeeperError as error:
                refused = ImageOutcome(state="error", reason=str(error), action="refuse")
                results = {image.identifier: refused}
                self._record(name, results, merge=True)
                return results, []
        results = self._execute(name, actions, files, {})
        self._record(name, results, merge=True)
        # What we made is removed; vmcatcher's own cache file never is.
        return results, [f for f in files.values() if f.owned]

    def _vmcatcher_file(self, image: imagelist.Image, path: Path) -> ReadyFile:
        """vmcatcher checked the file when caching it; we check again before any upload."""
        if not path.is_file():
            raise DownloadError(image=image.identifier, url=str(path), problem="no such file")
        digest, size = hashlib.sha512(), 0
        with path.open("rb") as data:
            while chunk := data.read(1024 * 1024):
                digest.update(chunk)
                size += len(chunk)
        if size != image.size or digest.hexdigest() != image.sha512:
            raise DownloadError(
                image=image.identifier,
                url=str(path),
                problem="size or SHA-512 differs from the event",
            )
        self.work_dir.mkdir(parents=True, exist_ok=True)
        prepared, disk_format = formats.prepare(
            path, self.accepted_formats, image.identifier, self.work_dir, image.format
        )
        return ReadyFile(
            path=str(prepared),
            disk_format=disk_format,
            content_digest=image.content_digest,
            sha512=image.sha512 if prepared == path else None,
            owned=prepared != path,
        )

    def _execute(
        self,
        name: str,
        actions: list[Action],
        files: dict[str, ReadyFile],
        download_errors: dict[str, str],
    ) -> Outcomes:
        results: Outcomes = {}
        failed_new: set[str] = set()
        for action in actions:
            if action.verb == "retire" and action.target and action.identifier in failed_new:
                # The new version did not make it: the old one stays in service.
                kept = results[action.identifier]
                results[action.identifier] = kept.model_copy(
                    update={"reason": f"{kept.reason}; previous version kept"}
                )
                continue
            self.doing = (self.doing[0], action.describe())
            try:
                result = self._apply(action, files, download_errors)
            except CloudkeeperError as error:
                LOG.error("%s: %s", name, error)
                result = ImageOutcome(state="error", reason=str(error), action=action.verb)
            except Exception as error:  # Glance/SDK errors: report, keep going
                LOG.error("%s: %s failed: %s", name, action.describe(), explain(error))
                result = ImageOutcome(state="error", reason=explain(error), action=action.verb)
            if result.state != "ok":
                failed_new.add(action.identifier)
            if action.verb == "clean":
                results[f"{action.identifier} (unfinished {action.existing.id})"] = result
            elif not (action.verb == "retire" and action.identifier in results):
                results[action.identifier] = result
        return results

    def _apply(
        self, action: Action, files: dict[str, ReadyFile], download_errors: dict[str, str]
    ) -> ImageOutcome:
        LOG.info("%s", action.describe())

        version = action.target.image.version if action.target else None

        def ok(reason: str, glance_id: str | None = None) -> ImageOutcome:
            return ImageOutcome(
                state="ok", reason=reason, action=action.verb, glance_id=glance_id, version=version
            )

        if action.verb == "keep":
            return ok(action.reason, action.existing.id)
        if action.verb == "clean":
            self.glance.retire(action.existing)
            return ok(action.reason)
        if action.verb == "update":
            self.glance.update(action.existing, action.target)
            return ok(action.reason, action.existing.id)
        if action.verb == "retire":
            how = self.glance.retire(action.existing)
            self._event("ExpirePostfix", action, action.existing.properties)
            return ok(f"{action.reason}: {how}")
        target = action.target
        ready = files.get(action.identifier)
        if action.identifier in download_errors:
            problem = download_errors[action.identifier]
            return ImageOutcome(state="error", reason=problem, action=action.verb)
        if not ready or ready.content_digest != target.image.content_digest:
            return ImageOutcome(
                state="pending",
                reason=f"{action.reason}; no downloaded file yet (the next sync fetches it)",
                action=action.verb,
            )
        path = Path(ready.path)
        if not path.exists():
            return ImageOutcome(
                state="pending",
                reason=f"{action.reason}; downloaded file is gone (the next sync fetches it)",
                action=action.verb,
            )
        image_id = self.glance.add(target, path, ready.disk_format, ready.sha512)
        self.uploaded += path.stat().st_size
        self._event("AvailablePostfix", action, target.properties, path)
        return ok(action.reason, image_id)

    def _event(self, kind: str, action: Action, properties: Any, path: Path | None = None) -> None:
        """Run the configured hook the way vmcatcher runs its event handler."""
        if not self.event_hook:
            return
        raw = json.loads(properties.get("APPLIANCE_ATTRIBUTES") or "{}")
        extra = {
            "IL_DC_IDENTIFIER": str(properties.get("APPLIANCE_IMAGE_LIST_ID", "")),
            "VO": str(properties.get("APPLIANCE_VO", "")),
        }
        if path:
            extra["FILENAME"] = str(path)
        env = vmcatcher.event_environment(kind, raw, extra)
        try:
            subprocess.run(
                self.event_hook, shell=True, env=env, timeout=HOOK_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            LOG.warning("event hook for %s failed: %s", action.identifier, error)

    def _record(self, name: str, results: Outcomes, merge: bool = False) -> None:
        self.status.record_images(name, results, self._now(), merge=merge)

    def _now(self) -> str:
        return self.clock().strftime("%Y-%m-%dT%H:%M:%SZ")

    @staticmethod
    def _remove_files(files: list[ReadyFile]) -> None:
        for ready in files:
            if ready.owned:
                Path(ready.path).unlink(missing_ok=True)
