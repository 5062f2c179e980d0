"""One sync run: list the master once, then each region on its own thread.

A region that fails stops only itself (GlanceSync's rule): its error is its
outcome and the others go on. Every region logs to its own file of the
run's directory (GlanceSync's ``sync_<date>`` directory). Data comes from
the read-once cache (cache.py).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from fedcloud_common.faults import explain
from fedcloud_common.openstack import Credentials
from fedcloud_common.regionstatus import RegionRecord, RunRecord
from fedcloud_common.settings.glancesync import GlanceSyncSettings, Policy
from fedcloud_glancesync import glance
from fedcloud_glancesync.cache import MasterCache
from fedcloud_glancesync.images import Image
from fedcloud_glancesync.plan import RegionPlan, master_candidates, plan_region, select
from fedcloud_glancesync.regions import TargetRegion

log = logging.getLogger("fedcloud_glancesync")
Connect = Callable[[Credentials, str], glance.Region]


def default_connect(credentials: Credentials, region: str) -> glance.Region:
    return glance.Region(region, glance.connect(credentials, region))


@dataclasses.dataclass
class Master:
    region: glance.Region
    images: list[Image]


class Syncer:
    def __init__(self, settings: GlanceSyncSettings, connect: Connect = default_connect) -> None:
        self.settings = settings
        self._connect = connect
        self._master: Master | None = None

    def master(self) -> Master:
        """The master's own images, listed once per run."""
        if self._master is None:
            region = self._connect(self.settings.master, self.settings.master_region)
            timeout = self.settings.targets.get("master", None)
            seconds = timeout.policy.list_images_timeout_s if timeout else 30.0
            images = master_candidates(region.images(seconds), region.project)
            self._master = Master(region, images)
        return self._master

    def policy(self, target: str) -> Policy:
        return self.settings.targets[target].policy

    def plan(self, where: TargetRegion, logger: logging.Logger | None = None) -> RegionPlan:
        region = self.region(where)
        return self._plan(where, region, logger or log)

    def region(self, where: TargetRegion) -> glance.Region:
        return self._connect(self.settings.targets[where.target].openstack, where.region)

    def _plan(
        self, where: TargetRegion, region: glance.Region, logger: logging.Logger
    ) -> RegionPlan:
        master = self.master()
        policy = self.policy(where.target)
        selected, warnings = select(master.images, policy, self.settings.managed_tag)
        images = region.images(policy.list_images_timeout_s)
        plan = plan_region(where.label, selected, master.images, images, region.project, policy)
        plan.warnings[:0] = warnings
        for warning in plan.warnings:
            logger.warning("%s", warning)
        return plan

    def run(
        self, regions: list[TargetRegion], dry_run: bool = False, parallel: bool = False
    ) -> RunRecord:
        started = datetime.datetime.now(datetime.UTC)
        logs = self.settings.state_dir / "logs" / f"sync_{started:%Y%m%d_%H%M%S}"
        logs.mkdir(parents=True, exist_ok=True)
        master = self.master()
        cache = MasterCache(master.region.download, self.settings.state_dir / "cache",
                            self.settings.cache_bytes)  # fmt: skip
        workers = self.settings.parallelism if parallel else 1
        try:
            with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
                futures = [
                    pool.submit(self._region_run, where, cache, logs, dry_run) for where in regions
                ]
                records = [future.result() for future in futures]
        finally:
            cache.clear()
        synced = {image_id for r in records for image_id in r.uploaded_ids}
        sizes = {i.id: i.size for i in master.images}
        return RunRecord(
            started=started,
            finished=datetime.datetime.now(datetime.UTC),
            dry_run=dry_run,
            regions=records,
            master_bytes_read=cache.bytes_read,
            synced_image_bytes=sum(sizes.get(i, 0) for i in synced),
            log_dir=str(logs),
        )

    def _region_run(
        self, where: TargetRegion, cache: MasterCache, logs: Path, dry_run: bool
    ) -> RegionRecord:
        path = logs / f"{where.label.replace(':', '_')}.log"
        logger = logging.getLogger(f"fedcloud_glancesync.region.{where.label}")
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            return RegionRun(self, where, cache, logger, dry_run, str(path)).run()
        finally:
            logger.removeHandler(handler)
            handler.close()


class RegionRun:
    """One region's sync: metadata first, then obsolete images, then uploads."""

    def __init__(
        self,
        syncer: Syncer,
        where: TargetRegion,
        cache: MasterCache,
        logger: logging.Logger,
        dry_run: bool,
        log_path: str,
    ) -> None:
        self.syncer, self.where, self.cache, self.log = syncer, where, cache, logger
        self.dry_run, self.log_path = dry_run, log_path
        self.done: Counter[str] = Counter()
        self.uploaded_ids: list[str] = []
        self.failures: list[str] = []

    def run(self) -> RegionRecord:
        planned: list[str] = []
        before: Counter[str] = Counter()
        try:
            region = self.syncer.region(self.where)
            plan = self.syncer._plan(self.where, region, self.log)
            before = Counter[str](d.status for d in plan.decisions)
            if self.dry_run:
                self._describe(plan)
                return self._record(before, before, "")
            planned = [d.master.id for d in plan.uploads()]
            self.cache.expect(planned)
            self._apply(region, plan, planned)
            replan = self.syncer._plan(self.where, region, self.log)
            after = Counter[str](d.status for d in replan.decisions)
        except Exception as error:  # the region stops; the others go on
            for image_id in planned:
                self.cache.done(image_id)
            reason = explain(error)
            self.log.error("region stopped: %s", reason)
            return self._record(before, before, reason, failed=True)
        return self._record(before, after, "; ".join(self.failures))

    def _apply(self, region: glance.Region, plan: RegionPlan, planned: list[str]) -> None:
        for decision in plan.metadata():
            assert decision.existing is not None
            changes: dict[str, object] = dict(decision.properties)
            if decision.visibility:
                changes["visibility"] = decision.visibility
            region.update(decision.existing.id, changes)
            self.log.info("updated metadata of %r: %s", decision.master.name, sorted(changes))
            self.done["metadata"] += 1
        for update in plan.obsolete:
            changes = dict(update.properties)
            if update.name:
                changes["name"] = update.name
            if update.visibility:
                changes["visibility"] = update.visibility
            region.update(update.existing.id, changes)
            self.log.info("obsolete %r: set %s", update.master.name, sorted(changes))
            self.done["obsolete"] += 1
        for decision in plan.uploads():
            planned.remove(decision.master.id)
            try:
                self._upload(region, decision.master, decision.status, decision.existing)
            except glance.DataMismatchError as error:
                # The master's fault, not the region's: the next image still goes.
                self.failures.append(str(error))
                self.log.error("%s", error)
            finally:
                self.cache.done(decision.master.id)

    def _upload(
        self, region: glance.Region, master: Image, status: str, existing: Image | None
    ) -> None:
        with self.cache.open(master) as data:
            if status == "pending_rename":
                assert existing is not None
                region.update(
                    existing.id, {"name": f"{existing.name}.old", "visibility": "private"}
                )
                self.log.info("renamed %s to %r.old, private", existing.id, existing.name)
            new_id = region.create(master, data)
            self.log.info("uploaded %r (%d bytes) as %s", master.name, master.size, new_id)
            if status == "pending_replace":
                assert existing is not None
                region.delete(existing.id)
                self.log.info("replaced %s by %s", existing.id, new_id)
        self.done[status.removeprefix("pending_")] += 1
        self.uploaded_ids.append(master.id)

    def _describe(self, plan: RegionPlan) -> None:
        for decision in plan.decisions:
            if decision.status != "ok":
                self.log.info("would handle %r: %s", decision.master.name, decision.status)
        for update in plan.obsolete:
            self.log.info("would update obsolete %r", update.master.name)

    def _record(
        self, before: Counter[str], after: Counter[str], reason: str, failed: bool = False
    ) -> RegionRecord:
        outcome: Literal["ok", "partial", "failed"]
        if failed:
            outcome = "failed"
        elif self.failures:
            outcome = "partial"
        elif after.get("error_checksum"):
            outcome = "partial"
            reason = reason or (
                f"{after['error_checksum']} image(s) stalled (error_checksum): name their "
                "checksums in dontupdate, rename or replace"
            )
        else:
            outcome = "ok"
        return RegionRecord(
            region=self.where.label,
            outcome=outcome,
            reason=reason,
            before=dict(before),
            after=dict(after),
            done=dict(self.done),
            uploaded_ids=self.uploaded_ids,
            log=self.log_path,
        )
