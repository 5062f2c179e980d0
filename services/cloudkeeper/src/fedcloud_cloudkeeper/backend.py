"""cloudkeeper-os: the long-running backend, the only writer to Glance.

It consumes the spool oldest request first. For each list it plans again
against Glance as it is now (so a request replayed after a crash, or one
overtaken by events, still does the right thing), then applies the plan:
clear unfinished uploads, upload new images and new versions, update
metadata in place, and only then retire what is gone -- a new version is
active before the old one disappears. Results per image land in the status
directory the CLI reads.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fedcloud_cloudkeeper import formats, imagelist, vmcatcher
from fedcloud_cloudkeeper.config import Config
from fedcloud_cloudkeeper.errors import CloudkeeperError, DownloadError
from fedcloud_cloudkeeper.glance import Glance
from fedcloud_cloudkeeper.plan import Action, plan, targets
from fedcloud_cloudkeeper.spool import Spool
from fedcloud_cloudkeeper.trust import write_json

LOG = logging.getLogger(__name__)
HOOK_TIMEOUT_S = 10


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
        self.status_dir = Path(state_dir) / "status"
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
        """Process every pending request; counts of what was done."""
        counts = {"requests": 0, "failed": 0}
        for path in self.spool.pending():
            request = self.spool.load(path)
            if request is None:
                counts["failed"] += 1
                continue
            counts["requests"] += 1
            try:
                results = self.process(request)
            except CloudkeeperError as error:  # a request we can never apply
                LOG.error("request %s refused: %s", path.name, error)
                self.spool.reject(path)
                counts["failed"] += 1
                continue
            except Exception as error:  # Glance or Keystone unreachable: retry later
                LOG.error("request %s left for the next attempt: %s", path.name, error)
                counts["failed"] += 1
                break
            for result in results.values():
                counts[result["action"]] = counts.get(result["action"], 0) + 1
                if result["state"] == "error":
                    counts["failed"] += 1
            self._remove_files(request)
            self.spool.done(path)
        return counts

    def serve(self, poll_s: float = 5.0, stop: Callable[[], bool] = lambda: False) -> None:
        LOG.info("cloudkeeper-os: watching %s", self.spool.requests)
        heartbeat = self.status_dir / "backend.heartbeat"
        while not stop():
            if self.spool.pending():
                LOG.info("cloudkeeper-os: %s", self.drain())
            # The container healthcheck reads this file's age.
            heartbeat.parent.mkdir(parents=True, exist_ok=True)
            heartbeat.touch()
            time.sleep(poll_s)

    def process(self, request: dict[str, Any]) -> dict[str, dict[str, Any]]:
        if request.get("kind") == "vmcatcher-event":
            return self._process_vmcatcher(request)
        if request.get("kind") != "sync-list":
            raise CloudkeeperError(f"unknown request kind {request.get('kind')!r}")
        name = request["list"]
        wanted = None
        if request.get("content") is not None:
            trusted = imagelist.parse(request["content"].encode(), f"{name} (spooled)")
            if trusted.expired(self.clock()):
                request = {**request, "retire_reason": "list expired"}
            else:
                wanted = targets(trusted, name, request.get("project"), request.get("prefix", ""))
        actions = plan(
            wanted, self.glance.managed(name), self.clock(), request.get("retire_reason", "")
        )
        results = self._execute(name, actions, request.get("files", {}))
        self._record(name, results)
        return results

    def _process_vmcatcher(self, request: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """One image from vmcatcher's cache: validated like a list entry, then planned alone."""
        name, now = request["list"], self.clock()
        try:
            event = imagelist.parse(vmcatcher.as_image_list(request, now), f"vmcatcher ({name})")
        except CloudkeeperError as error:
            results = {"(event)": {"state": "error", "reason": str(error), "action": "refuse"}}
            self._record(name, results, merge=True)
            return results
        (image,) = event.images
        managed = [m for m in self.glance.managed(name) if m.identifier == image.identifier]
        wanted: dict[str, Any] = {}
        files: dict[str, Any] = {}
        if request["event"] in vmcatcher.AVAILABLE:
            wanted = targets(event, name, self.vo_projects.get(event.vo or ""), "")
        actions = plan(wanted, managed, now, f"vmcatcher {request['event']}")
        if any(a.verb in ("add", "replace") for a in actions):
            try:
                files[image.identifier] = self._vmcatcher_file(image, Path(request["file"]))
            except CloudkeeperError as error:
                results = {
                    image.identifier: {"state": "error", "reason": str(error), "action": "refuse"}
                }
                self._record(name, results, merge=True)
                return results
        request["files"] = files  # so drain() removes what we made, never vmcatcher's file
        results = self._execute(name, actions, files)
        self._record(name, results, merge=True)
        return results

    def _vmcatcher_file(self, image: imagelist.Image, path: Path) -> dict[str, Any]:
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
            path, self.accepted_formats, image.identifier, workdir=self.work_dir
        )
        return {
            "path": str(prepared),
            "disk_format": disk_format,
            "content_digest": image.content_digest,
            "sha512": image.sha512 if prepared == path else None,
            "owned": prepared != path,
        }

    def _execute(
        self, name: str, actions: list[Action], files: dict[str, Any]
    ) -> dict[str, dict[str, Any]]:
        results: dict[str, dict[str, Any]] = {}
        failed_new: set[str] = set()
        for action in actions:
            if action.verb == "retire" and action.target and action.identifier in failed_new:
                # The new version did not make it: the old one stays in service.
                results[action.identifier]["reason"] += "; previous version kept"
                continue
            try:
                result = self._apply(action, files)
            except CloudkeeperError as error:
                LOG.error("%s: %s", name, error)
                result = {"state": "error", "reason": str(error)}
                failed_new.add(action.identifier)
            except Exception as error:  # Glance/SDK errors: report, keep going
                LOG.exception("%s: %s failed", name, action.describe())
                result = {"state": "error", "reason": f"{type(error).__name__}: {error}"[:300]}
                failed_new.add(action.identifier)
            if result["state"] != "ok":
                failed_new.add(action.identifier)
            result["action"] = action.verb
            if action.verb == "clean":
                results[f"{action.identifier} (unfinished {action.existing.id})"] = result
            elif not (action.verb == "retire" and action.identifier in results):
                results[action.identifier] = result
        return results

    def _apply(self, action: Action, files: dict[str, Any]) -> dict[str, Any]:
        LOG.info("%s", action.describe())
        if action.verb == "keep":
            return {"state": "ok", "reason": action.reason, "glance_id": action.existing.id}
        if action.verb == "clean":
            self.glance.retire(action.existing)
            return {"state": "ok", "reason": action.reason}
        if action.verb == "update":
            self.glance.update(action.existing, action.target)
            return {"state": "ok", "reason": action.reason, "glance_id": action.existing.id}
        if action.verb == "retire":
            how = self.glance.retire(action.existing)
            self._event("ExpirePostfix", action, action.existing.properties)
            return {"state": "ok", "reason": f"{action.reason}: {how}"}
        target = action.target
        ready = files.get(action.identifier)
        if not ready or ready.get("content_digest") != target.image.content_digest:
            return {"state": "pending", "reason": f"{action.reason}; no downloaded file yet"}
        path = Path(ready["path"])
        if not path.exists():
            return {"state": "pending", "reason": f"{action.reason}; downloaded file is gone"}
        image_id = self.glance.add(target, path, ready["disk_format"], ready.get("sha512"))
        self._event("AvailablePostfix", action, target.properties, path)
        return {"state": "ok", "reason": action.reason, "glance_id": image_id}

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

    def _record(self, name: str, results: dict[str, dict[str, Any]], merge: bool = False) -> None:
        when = self.clock().strftime("%Y-%m-%dT%H:%M:%SZ")
        path = self.status_dir / f"images-{name}.json"
        if merge and path.exists():
            results = {**json.loads(path.read_text())["images"], **results}
        write_json(path, {"updated": when, "images": results})

    @staticmethod
    def _remove_files(request: dict[str, Any]) -> None:
        for ready in request.get("files", {}).values():
            if ready.get("owned", True):
                Path(ready["path"]).unlink(missing_ok=True)
