"""``fedcloud-glancesync``: GlanceSync's commands over the rendered settings.

    fedcloud-glancesync sync [REGION | target:REGION | target:]... [--dry-run] [--parallel]
    fedcloud-glancesync status [REGION...]      GlanceSync's CSV: status,region,image
    fedcloud-glancesync show-regions
    fedcloud-glancesync make-backups [REGION...] [--dir DIR]

``sync`` ends with the summary line the supervisor parses and writes
``status.json`` into the state directory (not for ``--dry-run``).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from fedcloud_common import settings as settings_io
from fedcloud_common.errors import ConfigError
from fedcloud_common.faults import explain
from fedcloud_common.files import write_atomically
from fedcloud_common.regionstatus import STATUS_FILE, RunRecord
from fedcloud_common.services import RENDERED_DIR
from fedcloud_common.settings.glancesync import GlanceSyncSettings, Target
from fedcloud_common.summary import format_summary
from fedcloud_glancesync import backups, glance
from fedcloud_glancesync.regions import Catalog, TargetRegion, configured, resolve
from fedcloud_glancesync.sync import Syncer

JOB = "region-sync"
DEFAULT_SETTINGS = Path(RENDERED_DIR) / "glancesync.json"


def _catalog_of(syncer: Syncer) -> Catalog:
    """A target's regions from its Keystone catalog (those with a Glance)."""

    def regions(target: str, spec: Target) -> list[str]:
        region = spec.openstack.region or syncer.settings.master_region
        return glance.catalog_regions(glance.connect(spec.openstack, region))

    return regions


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fedcloud-glancesync", description=__doc__.split("\n")[0])
    parser.add_argument("-c", "--settings", type=Path, default=DEFAULT_SETTINGS)
    commands = parser.add_subparsers(dest="command", required=True)
    sync = commands.add_parser("sync", help="sync the master's images to regions")
    sync.add_argument("regions", nargs="*", help="REGION, target:REGION or target:")
    sync.add_argument(
        "--dry-run", action="store_true", help="say what would change; change nothing"
    )
    sync.add_argument("--parallel", action="store_true", help="sync `parallelism` regions at once")
    status = commands.add_parser("status", help="GlanceSync's status CSV: status,region,image")
    status.add_argument("regions", nargs="*")
    commands.add_parser("show-regions", help="every region of every target")
    backup = commands.add_parser("make-backups", help="one metadata CSV per region")
    backup.add_argument("regions", nargs="*")
    backup.add_argument("--dir", type=Path, help="where (default: STATE_DIR/backups/...)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    try:
        config = settings_io.load(GlanceSyncSettings, args.settings)
        syncer = Syncer(config)
        if args.command == "show-regions":
            return show_regions(syncer)
        regions = resolve(config, args.regions, _catalog_of(syncer))
        if args.command == "status":
            return show_status(syncer, regions)
        if args.command == "make-backups":
            return make_backups(syncer, regions, args.dir)
        return run_sync(syncer, regions, args.dry_run, args.parallel)
    except ConfigError as error:
        print(f"fedcloud-glancesync: {error}", file=sys.stderr)
        if args.command == "sync":
            print(format_summary(JOB, "failed", {}, 0.0, str(error)))
        return 2
    except Exception as error:
        reason = explain(error)
        print(f"fedcloud-glancesync: {reason}", file=sys.stderr)
        if args.command == "sync":
            print(format_summary(JOB, "failed", {}, 0.0, reason))
        return 1


def show_regions(syncer: Syncer) -> int:
    catalog_of = _catalog_of(syncer)
    for target in syncer.settings.targets:
        for region in configured(syncer.settings, target, catalog_of):
            print(TargetRegion(target, region).label)
    return 0


def show_status(syncer: Syncer, regions: list[TargetRegion]) -> int:
    failed = 0
    for where in regions:
        try:
            plan = syncer.plan(where)
        except Exception as error:
            print(f"fedcloud-glancesync: {where.label}: {explain(error)}", file=sys.stderr)
            failed += 1
            continue
        for decision in sorted(plan.decisions, key=lambda d: d.master.name):
            print(f"{decision.status},{where.label},{decision.master.name}")
    return 1 if failed else 0


def make_backups(syncer: Syncer, regions: list[TargetRegion], directory: Path | None) -> int:
    out = directory or backups.backup_dir(syncer.settings.state_dir / "backups")
    master = syncer.master()
    backups.write_backup(out, syncer.settings.master_region, master.region.images(30))
    failed = 0
    for where in regions:
        try:
            region = syncer.region(where)
            policy = syncer.policy(where.target)
            backups.write_backup(out, where.label, region.images(policy.list_images_timeout_s))
        except Exception as error:
            print(f"fedcloud-glancesync: {where.label}: {explain(error)}", file=sys.stderr)
            failed += 1
    print(out)
    return 1 if failed else 0


def run_sync(syncer: Syncer, regions: list[TargetRegion], dry_run: bool, parallel: bool) -> int:
    started = time.monotonic()
    record = syncer.run(regions, dry_run=dry_run, parallel=parallel)
    if not dry_run:
        path = syncer.settings.state_dir / STATUS_FILE
        write_atomically(path, record.model_dump_json(indent=2) + "\n")
    for region in record.regions:
        line = f"{region.region}: {region.outcome}"
        print(f"{line} -- {region.reason}" if region.reason else line, file=sys.stderr)
    print(summary(record, time.monotonic() - started))
    return 0 if all(r.outcome == "ok" for r in record.regions) else 1


def summary(record: RunRecord, duration: float) -> str:
    outcomes = [r.outcome for r in record.regions]
    bad = [r for r in record.regions if r.outcome != "ok"]
    if not bad:
        outcome = "ok"
    elif all(o == "failed" for o in outcomes):
        outcome = "failed"
    else:
        outcome = "partial"
    counts = {
        "regions": len(outcomes),
        "failed": outcomes.count("failed"),
        "uploaded": sum(
            r.done.get("upload", 0) + r.done.get("replace", 0) + r.done.get("rename", 0)
            for r in record.regions
        ),
        "metadata": sum(r.done.get("metadata", 0) for r in record.regions),
        "master_read_ratio": f"{record.master_read_ratio:.2f}",
    }
    if record.dry_run:
        counts["dry_run"] = "yes"
    reason = "; ".join(f"{r.region}: {r.reason}" for r in bad)
    return format_summary(JOB, outcome, counts, duration, reason)
