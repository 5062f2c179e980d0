"""Command lines: ``cloudkeeper`` (the job) and ``cloudkeeper-os`` (the backend).

One vocabulary throughout: ``sync`` (fetch, verify, download, hand over),
``verify`` (one list, nothing recorded), ``status``, ``cleanup``; the
backend ``serve``s or ``drain``s the spool. Every run ends with the one
summary line (fedcloud_common.summary) and exits non-zero when anything
failed, so the supervisor and cron see failures without parsing logs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

from fedcloud_cloudkeeper import vmcatcher
from fedcloud_cloudkeeper.backend import Backend
from fedcloud_cloudkeeper.config import Config
from fedcloud_cloudkeeper.glance import Glance, connector_for
from fedcloud_cloudkeeper.job import Job, Report
from fedcloud_cloudkeeper.spool import Spool
from fedcloud_common.errors import FedcloudError
from fedcloud_common.summary import format_summary

DEFAULT_CONFIG = "/etc/cloudkeeper/cloudkeeper.json"


def main(argv: list[str] | None = None) -> int:
    parser = _parser("cloudkeeper", "Replicate signed image lists into Glance.")
    commands = _Commands(parser.add_subparsers(dest="command", required=True))
    sync = commands.add_parser("sync", help="fetch, verify and download lists; queue the changes")
    sync.add_argument("--dry-run", action="store_true", help="say what would change and why")
    sync.add_argument("--list", help="only this list")
    sync.add_argument("--drain", action="store_true", help="then apply the queue in this process")
    sync.add_argument(
        "--wait",
        type=float,
        default=0,
        metavar="SECONDS",
        help="then wait up to SECONDS for cloudkeeper-os to apply the queue, so the run "
        "ends with the images in Glance (what the supervisor's image-sync job does)",
    )
    verify = commands.add_parser("verify", help="fetch and verify one list, change nothing")
    verify.add_argument("list", help="the list's configured name")
    commands.add_parser("status", help="per list and image: ok / pending / error, with reasons")
    commands.add_parser(
        "vmcatcher-event",
        help="spool the image event in the VMCATCHER_EVENT_* environment (VMCATCHER_CACHE_EVENT)",
    )
    cleanup = commands.add_parser("cleanup", help="retire images of unsubscribed lists")
    cleanup.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    _logging(args.verbose)
    started = time.monotonic()
    try:
        config = Config.from_file(args.config)
        os.environ.update(config.environment)  # requests reads the proxy from here
        if args.command == "status":
            return _status(config)
        if args.command == "vmcatcher-event":
            return _vmcatcher_event(config, started)
        glance = Glance(connector_for(config), config.tag)
        job = Job(config, glance)
        if args.command == "verify":
            trusted = job.verify(config.source(args.list))
            for image in trusted.images:
                print(f"{image.identifier}  {image.version}  {image.size}  {image.title}")
            print(
                format_summary(
                    "cloudkeeper-verify",
                    "ok",
                    {"images": len(trusted.images)},
                    time.monotonic() - started,
                )
            )
            return 0
        if args.command == "cleanup":
            report = job.cleanup(dry_run=args.dry_run)
            return _finish("cloudkeeper-cleanup", report, args.dry_run, started)
        report = job.sync(dry_run=args.dry_run, only=args.list)
        if args.drain and not args.dry_run and not report.skipped:
            counts = Backend.from_config(config, glance).drain()
            if counts["failed"]:
                print(f"backend: {counts}", file=sys.stderr)
                return _finish("cloudkeeper-sync", report, False, started, backend_failed=True)
        waiting = 0
        if args.wait and not args.dry_run and not report.skipped:
            waiting = _wait_for_backend(Spool(config.spool_dir), args.wait)
        return _finish("cloudkeeper-sync", report, args.dry_run, started, waiting=waiting)
    except (FedcloudError, OSError) as error:
        print(f"cloudkeeper: {error}", file=sys.stderr)
        print(
            format_summary(
                f"cloudkeeper-{args.command}",
                "failed",
                {"error": type(error).__name__},
                time.monotonic() - started,
            )
        )
        return 1


def backend_main(argv: list[str] | None = None) -> int:
    parser = _parser("cloudkeeper-os", "The Glance backend: applies the spooled requests.")
    commands = _Commands(parser.add_subparsers(dest="command", required=True))
    serve = commands.add_parser("serve", help="run until stopped, applying requests as they come")
    serve.add_argument("--poll", type=float, default=5.0)
    commands.add_parser("drain", help="apply every pending request, then exit")
    args = parser.parse_args(argv)
    _logging(args.verbose)
    started = time.monotonic()
    try:
        config = Config.from_file(args.config)
        glance = Glance(connector_for(config), config.tag)
        backend = Backend.from_config(config, glance)
        if args.command == "serve":
            stopping: list[int] = []
            signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
            backend.serve(args.poll, stop=lambda: bool(stopping))
            return 0
        counts = backend.drain()
    except (FedcloudError, OSError) as error:
        print(f"cloudkeeper-os: {error}", file=sys.stderr)
        print(
            format_summary(
                "cloudkeeper-os-drain",
                "failed",
                {"error": type(error).__name__},
                time.monotonic() - started,
            )
        )
        return 1
    outcome = "partial" if counts["failed"] else "ok"
    print(format_summary("cloudkeeper-os-drain", outcome, counts, time.monotonic() - started))
    return 1 if counts["failed"] else 0


def _wait_for_backend(spool: Spool, timeout: float, poll: float = 2.0) -> int:
    """Requests cloudkeeper-os has not applied after ``timeout`` seconds (0: all done)."""
    deadline = time.monotonic() + timeout
    while (pending := len(spool.pending())) and time.monotonic() < deadline:
        time.sleep(poll)
    if pending:
        print(
            f"{pending} request(s) not yet applied by cloudkeeper-os after {timeout:.0f} s: "
            "is it running? (systemctl status cloudkeeper-os)",
            file=sys.stderr,
        )
    return pending


def _finish(
    job: str,
    report: Report,
    dry_run: bool,
    started: float,
    backend_failed: bool = False,
    waiting: int = 0,
) -> int:
    if report.skipped:
        print(
            format_summary(
                job, "skipped", {"reason": "another_run_holds_the_lock"}, time.monotonic() - started
            )
        )
        return 0
    for outcome in report.lists:
        print(f"list {outcome.name}: {outcome.state}: {outcome.reason}")
        for action in outcome.actions:
            if action.verb != "keep":
                print(f"  {'would ' if dry_run else ''}{action.describe()}")
        for error in outcome.errors:
            print(f"  error: {error}")
    failed = report.failed or backend_failed or waiting > 0
    outcome = (
        "ok"
        if not failed
        else (
            "failed"
            if all(o.state == "error" for o in report.lists) and report.lists
            else "partial"
        )
    )
    counts = {"dry_run": "yes"} if dry_run else {}
    counts.update(report.counts())
    if waiting:
        counts["not_applied"] = waiting
    print(format_summary(job, outcome, counts, time.monotonic() - started))
    return 1 if failed else 0


def _vmcatcher_event(config: Config, started: float) -> int:
    """Spool only: vmcatcher kills handlers that take longer than ~10 s."""
    request = vmcatcher.request_from_environment(os.environ, config.vmcatcher_list)
    if request is None:
        kind = os.environ.get("VMCATCHER_EVENT_TYPE", "-")
        counts = {"event": kind, "queued": 0}
        print(format_summary("cloudkeeper-vmcatcher-event", "skipped", counts, 0.0))
        return 0
    Spool(config.spool_dir).put(request)
    counts = {"event": request["event"], "image": request["image"]["dc:identifier"], "queued": 1}
    print(format_summary("cloudkeeper-vmcatcher-event", "ok", counts, time.monotonic() - started))
    return 0


def _status(config: Config) -> int:
    status_dir = Path(config.state_dir) / "status"
    lists_file = status_dir / "lists.json"
    lists = json.loads(lists_file.read_text()) if lists_file.exists() else {}
    pending = len(Spool(config.spool_dir).pending())
    bad = 0
    for source in config.lists:
        entry = lists.get(source.name, {"state": "pending", "reason": "never synced"})
        bad += entry["state"] == "error"
        print(f"list {source.name}: {entry['state']}: {entry['reason']}")
        images_file = status_dir / f"images-{source.name}.json"
        images = json.loads(images_file.read_text())["images"] if images_file.exists() else {}
        for identifier, image in sorted(images.items()):
            bad += image["state"] == "error"
            print(f"  image {identifier}: {image['state']}: {image['reason']}")
    print(f"requests waiting for cloudkeeper-os: {pending}")
    counts = {"lists": len(config.lists), "errors": bad, "queued": pending}
    print(format_summary("cloudkeeper-status", "partial" if bad else "ok", counts, 0.0))
    return 1 if bad else 0


class _Commands:
    """Subcommands that also take --config/--verbose after the command name.

    The supervisor runs ``fedcloud-cloudkeeper sync --config FILE``; people
    type ``cloudkeeper --config FILE sync``. Both work.
    """

    def __init__(self, actions: argparse._SubParsersAction) -> None:
        self.actions = actions

    def add_parser(self, name: str, **kwargs: object) -> argparse.ArgumentParser:
        sub = self.actions.add_parser(name, **kwargs)
        sub.add_argument("--config", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        sub.add_argument(
            "-v",
            "--verbose",
            action="store_true",
            default=argparse.SUPPRESS,
            help=argparse.SUPPRESS,
        )
        return sub


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--config",
        type=Path,
        default=Path(os.environ.get("CLOUDKEEPER_CONFIG", DEFAULT_CONFIG)),
        help=f"JSON configuration (default {DEFAULT_CONFIG}, or $CLOUDKEEPER_CONFIG)",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def _logging(verbose: bool) -> None:
    """Our own progress and actions always (stderr); libraries' chatter only with -v."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("fedcloud_cloudkeeper").setLevel(logging.INFO)
