"""Command lines: ``cloudkeeper`` (the job) and ``cloudkeeper-os`` (the backend).

One vocabulary throughout: ``sync`` (fetch, verify, download, hand over),
``verify`` (one list, nothing recorded), ``status``, ``cleanup``; the
backend ``serve``s or ``drain``s the spool. Every run ends with the one
summary line (fedcloud_common.summary) and exits non-zero when anything
failed, so the supervisor and cron see failures without parsing logs.
"""

from __future__ import annotations

import argparse
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
from fedcloud_cloudkeeper.spool import Spool, VmcatcherEvent
from fedcloud_cloudkeeper.waiting import DEAD_AFTER_S, Waited, wait_for_results
from fedcloud_common.errors import FedcloudError
from fedcloud_common.faults import explain
from fedcloud_common.imagestatus import StatusFiles
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
    cleanup.add_argument(
        "--retire-old",
        action="store_true",
        help="also retire the images cloudkeeper-os or atrope placed for lists no longer "
        "subscribed (listed either way; only for lists with adopt set)",
    )
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
            report = job.cleanup(dry_run=args.dry_run, retire_old=args.retire_old)
            return _finish("cloudkeeper-cleanup", report, args.dry_run, started)
        report = job.sync(dry_run=args.dry_run, only=args.list)
        drained = None
        if args.drain and not args.dry_run and not report.skipped:
            drained = Backend.from_config(config, glance).drain()
        waited = None
        if args.wait and not args.dry_run and not report.skipped:
            ids = [o.request_id for o in report.lists if o.request_id]
            status = StatusFiles(config.state_dir)
            waited = wait_for_results(Spool(config.spool_dir), status, ids, args.wait)
        return _finish("cloudkeeper-sync", report, args.dry_run, started, waited, drained)
    except (FedcloudError, OSError) as error:
        reason = str(error) if isinstance(error, FedcloudError) else explain(error)
        print(f"cloudkeeper: {reason}", file=sys.stderr)
        print(
            format_summary(
                f"cloudkeeper-{args.command}",
                "failed",
                {"error": type(error).__name__},
                time.monotonic() - started,
                reason=reason,
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
        reason = str(error) if isinstance(error, FedcloudError) else explain(error)
        print(f"cloudkeeper-os: {reason}", file=sys.stderr)
        print(
            format_summary(
                "cloudkeeper-os-drain",
                "failed",
                {"error": type(error).__name__},
                time.monotonic() - started,
                reason=reason,
            )
        )
        return 1
    outcome = "partial" if counts["failed"] or counts["pending"] else "ok"
    reason = (
        f"{counts['failed'] + counts['pending']} image(s) or request(s) not applied: "
        "see cloudkeeper status"
        if outcome != "ok"
        else ""
    )
    elapsed = time.monotonic() - started
    print(format_summary("cloudkeeper-os-drain", outcome, counts, elapsed, reason))
    return 1 if outcome != "ok" else 0


def _finish(
    job: str,
    report: Report,
    dry_run: bool,
    started: float,
    waited: Waited | None = None,
    drained: dict[str, int] | None = None,
) -> int:
    """Print each list's outcome and the summary; ok only if every change took effect.

    The counts separate what was planned from what cloudkeeper-os applied
    (known when the run waited for it, or drained the queue itself) and
    what failed. The summary's reason is the first problem, in one line.
    """
    if report.skipped:
        print(
            format_summary(
                job, "skipped", {"reason": "another_run_holds_the_lock"}, time.monotonic() - started
            )
        )
        return 0
    problems: list[str] = []
    applied = failed = 0
    for outcome in report.lists:
        print(f"list {outcome.name}: {outcome.state}: {outcome.reason}")
        if outcome.state == "error":
            problems.append(f"list {outcome.name}: {outcome.reason}")
        for action in outcome.actions:
            if action.verb != "keep":
                change = dry_run and action.verb != "leave"
                print(f"  {'would ' if change else ''}{action.describe()}")
        for error in outcome.errors:
            print(f"  error: {error}")
        result = waited.results.get(outcome.request_id or "") if waited else None
        if result is None:
            problems += [f"list {outcome.name}: {error}" for error in outcome.errors]
            continue
        for name, image in sorted(result.images.items()):
            if image.state == "ok":
                applied += image.action != "keep"
            else:
                failed += 1
                print(f"  not applied: {name}: {image.reason}")
        if not result.ok:
            lines = result.problems() or [result.reason]
            problems += [f"list {outcome.name}: {line}" for line in lines]
    if waited and waited.problem:
        problems.append(waited.problem)
    if drained and (drained["failed"] or drained["pending"]):
        problems.append(
            f"cloudkeeper-os: {drained['failed'] + drained['pending']} image(s) or request(s) "
            "not applied; see cloudkeeper status"
        )
    counts: dict[str, object] = {"dry_run": "yes"} if dry_run else {}
    planned = report.counts()
    counts |= {"lists": planned["lists"], "lists_failed": planned["lists_failed"]}
    changes = sum(planned[verb] for verb in ("adopt", "add", "replace", "update", "retire"))
    if dry_run:
        verbs = ("adopt", "add", "replace", "update", "retire", "keep")
        counts |= {verb: planned[verb] for verb in verbs}
    else:
        # What was planned, what took effect and what did not, then the bytes.
        counts["planned"] = changes
        uploaded = None
        if waited is not None:
            counts |= {"applied": applied, "failed": failed}
            if waited.unanswered:
                counts["not_applied"] = len(waited.unanswered)
            uploaded = sum(result.uploaded_bytes for result in waited.results.values())
        elif drained is not None:
            counts |= {"applied": drained["applied"], "failed": drained["failed"]}
            uploaded = drained["uploaded_bytes"]
        else:
            counts["queued"] = sum(1 for o in report.lists if o.request_id)
        counts["downloaded_bytes"] = report.downloaded_bytes
        if uploaded is not None:
            counts["uploaded_bytes"] = uploaded
    counts["errors"] = planned["errors"]
    if not problems:
        verdict = "ok"
    elif report.lists and all(o.state == "error" for o in report.lists):
        verdict = "failed"
    elif waited is not None and changes and not any(r.ok for r in waited.results.values()):
        verdict = "failed"  # nothing it set out to change took effect
    else:
        verdict = "partial"
    reason = ""
    if problems:
        reason = problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
    for problem in problems[1:]:
        print(f"also: {problem}", file=sys.stderr)
    if problems:
        print(f"cloudkeeper: {problems[0]}", file=sys.stderr)
    print(format_summary(job, verdict, counts, time.monotonic() - started, reason))
    return 1 if problems else 0


def _vmcatcher_event(config: Config, started: float) -> int:
    """Spool only: vmcatcher kills handlers that take longer than ~10 s."""
    fields = vmcatcher.request_from_environment(os.environ, config.vmcatcher_list)
    if fields is None:
        kind = os.environ.get("VMCATCHER_EVENT_TYPE", "-")
        counts = {"event": kind, "queued": 0}
        print(format_summary("cloudkeeper-vmcatcher-event", "skipped", counts, 0.0))
        return 0
    request = VmcatcherEvent.model_validate(fields)
    Spool(config.spool_dir).put(request)
    counts = {"event": request.event, "image": request.image["dc:identifier"], "queued": 1}
    print(format_summary("cloudkeeper-vmcatcher-event", "ok", counts, time.monotonic() - started))
    return 0


def _status(config: Config) -> int:
    """Per list and image: ok, pending or error with the reason; and the backend's state."""
    status = StatusFiles(config.state_dir)
    lists = status.lists()
    pending = len(Spool(config.spool_dir).pending())
    bad = 0
    for source in config.lists:
        entry = lists.get(source.name)
        state, reason = (entry.state, entry.reason) if entry else ("pending", "never synced")
        bad += state == "error"
        print(f"list {source.name}: {state}: {reason}")
        for error in entry.errors if entry else []:
            print(f"  error: {error}")
        for identifier, image in sorted(status.images(source.name).items()):
            bad += image.state != "ok"
            print(f"  image {identifier}: {image.state}: {image.reason}")
    beat, age = status.heartbeat()
    if age is None:
        print("cloudkeeper-os: has never run on this spool")
    elif age > DEAD_AFTER_S:
        print(f"cloudkeeper-os: not running (last heartbeat {age:.0f} s ago)")
    else:
        print(f"cloudkeeper-os: running; {(beat.doing if beat else None) or 'idle'}")
    print(f"requests waiting for cloudkeeper-os: {pending}")
    counts = {"lists": len(config.lists), "errors": bad, "queued": pending}
    reason = f"{bad} list(s) or image(s) not ok (above)" if bad else ""
    print(format_summary("cloudkeeper-status", "partial" if bad else "ok", counts, 0.0, reason))
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
