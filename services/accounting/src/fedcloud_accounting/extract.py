"""The hourly extraction job: cASO over a window the appliance owns.

``run()`` is three steps for each cASO extractor the chosen record types
need (nova: cloud and accelerator; neutron: ip; cinder: storage): pick the
window (that type's own watermark → now), run cASO with that extractor
alone for exactly that window, and judge the run before moving the type's
watermark. ``republish()`` runs the same for a window given by the
operator and moves no watermark.
cASO exits 0 and advances its own lastrun when an extractor fails, so the
judgement reads what cASO logged as well as its exit status:

- any ERROR/CRITICAL record (an extractor or the messenger raised),
- a project that was started but never reported its record count,
- Keystone refusing the project listing (cASO only warns),
- no project at all.

A failed run leaves the watermark where it was, so the next run extracts
the failed window again; records are cumulative per VM, so a window sent
twice is harmless while a window skipped loses the VMs that ended in it.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fedcloud_accounting import casoconf, config
from fedcloud_accounting.watermark import Watermark
from fedcloud_common.faults import explain_text
from fedcloud_common.settings.accounting import Extractor, ExtractSettings, RecordType
from fedcloud_common.summary import format_summary

JOB = "caso-extract"
REPUBLISH = "caso-republish"
_LEVEL = re.compile(r"^\S+ \S+ \d+ (?P<level>[A-Z]+) (?P<logger>\S+) (?P<text>.*)$")
_STARTED = re.compile(r"Extracting records for project '(?P<project>[^']+)'")
_DONE = re.compile(r"Extracted (?P<count>\d+) records in total for project '(?P<project>[^']+)'")
_NO_PROJECTS = "Unable to get projects from Keystone"
_NO_VO = re.compile(r"No mapping could be found for project '(?P<project>[^']+)'")


@dataclasses.dataclass
class Verdict:
    """What one cASO run achieved, read from its exit status and log."""

    returncode: int
    projects: set[str] = dataclasses.field(default_factory=set)
    finished: dict[str, int] = dataclasses.field(default_factory=dict)
    errors: list[str] = dataclasses.field(default_factory=list)
    no_vo: set[str] = dataclasses.field(default_factory=set)
    # owner look-ups cASO logged as errors and went on without (see judge)
    user_lookups: list[str] = dataclasses.field(default_factory=list)

    @property
    def records(self) -> int:
        return sum(self.finished.values())

    def problems(self) -> list[str]:
        found = []
        if self.returncode != 0:
            found.append(f"cASO exited with status {self.returncode}")
        found += self.errors
        unfinished = sorted(self.projects - set(self.finished))
        if unfinished:
            found.append(f"projects not finished: {','.join(unfinished)}")
        if not self.projects and self.returncode == 0:
            found.append("no project to account (check projects/project_tag and roles)")
        return found


def judge(returncode: int, log: str) -> Verdict:
    """Read cASO's oslo.log output (one record per line, tracebacks included)."""
    verdict = Verdict(returncode)
    last_error: str | None = None
    for line in log.splitlines():
        match = _LEVEL.match(line)
        # a record's first line carries oslo's context ("[-]", "[req-...]");
        # the lines of a traceback repeat the prefix without it
        if match is None:
            continue
        if not match["text"].startswith("["):
            # cASO logs a failed owner look-up (Keystone user -> name) with its
            # traceback and goes on with no name; its neutron extractor always
            # looks up user None. Not a lost record: set apart, not an error.
            if last_error is not None and "in _get_keystone_user" in match["text"]:
                verdict.errors.remove(last_error)
                verdict.user_lookups.append(last_error)
                last_error = None
            continue
        last_error = None
        text = match["text"].split("] ", 1)[-1]
        if (started := _STARTED.search(text)) is not None:
            verdict.projects.add(started["project"])
        elif (done := _DONE.search(text)) is not None:
            verdict.finished[done["project"]] = int(done["count"])
        elif (no_vo := _NO_VO.search(text)) is not None and "mapping file" not in text:
            verdict.no_vo.add(no_vo["project"])
        if match["level"] in ("ERROR", "CRITICAL") or _NO_PROJECTS in text:
            verdict.errors.append(text)
            last_error = text
    return verdict


@dataclasses.dataclass
class TypeRun:
    """One cASO run: an extractor, the record types it gives, its window, its verdict."""

    extractor: Extractor
    kinds: list[RecordType]
    start: datetime.datetime
    verdict: Verdict

    def problems(self) -> list[str]:
        return [f"{self.extractor} ({','.join(self.kinds)}): {p}" for p in self.verdict.problems()]


class ExtractJob:
    def __init__(self, settings: ExtractSettings, now: datetime.datetime | None = None) -> None:
        self.config = settings
        self.watermark = Watermark(
            settings.state_dir, settings.start_date, settings.recovery_days, now
        )
        self._now = now

    def run(self) -> int:
        """Per extractor: window → cASO → judge; prints the summary line, returns the exit code.

        Each record type's window starts at its own watermark; a type whose
        extractor failed keeps its mark (its window is extracted again next
        time) while the others move on.
        """
        began = time.monotonic()
        end = self._end()
        reading = self.watermark.read(list(self.config.record_types))
        runs = [
            self._one(extractor, kinds, min(reading.until[k] for k in kinds), end)
            for extractor, kinds in self.config.extractors.items()
        ]
        done: dict[str, datetime.datetime] = {
            kind: end for r in runs if not r.problems() for kind in r.kinds
        }
        if done:
            self.watermark.advance(done)
        marks = reading.until | done
        return self._report(JOB, runs, end, began, min(marks.values()), reading.problem)

    def republish(self, start: datetime.datetime, end: datetime.datetime) -> int:
        """Extract [start, end] again for every type, for the repository; no watermark moves.

        The records carry the same keys (VM, IP, volume UUID with site and
        month) as when first sent, and the repository keeps the latest per
        key, so republishing a window, once or twice, replaces, never adds.
        """
        began = time.monotonic()
        if start >= end:
            print(f"{REPUBLISH}: --from {start} is not before --to {end}", file=sys.stderr)
            return 2
        runs = [
            self._one(extractor, kinds, start, end)
            for extractor, kinds in self.config.extractors.items()
        ]
        return self._report(REPUBLISH, runs, end, began, None, None)

    def _end(self) -> datetime.datetime:
        return (self._now or datetime.datetime.now(datetime.UTC)).replace(microsecond=0)

    def _one(
        self,
        extractor: Extractor,
        kinds: list[RecordType],
        start: datetime.datetime,
        end: datetime.datetime,
    ) -> TypeRun:
        return TypeRun(extractor, kinds, start, self.extract(extractor, kinds, start, end))

    def _report(
        self,
        job: str,
        runs: list[TypeRun],
        end: datetime.datetime,
        began: float,
        watermark: datetime.datetime | None,
        mark_problem: str | None,
    ) -> int:
        problems = [p for r in runs for p in r.problems()]
        no_vo = set().union(*(r.verdict.no_vo for r in runs))
        for problem in [*problems, *([mark_problem] if mark_problem else [])]:
            print(f"{job}: {problem}", file=sys.stderr)
        if no_vo:
            print(
                f"{job}: no VO ({self.config.vo_property} property) for projects "
                f"{','.join(sorted(no_vo))}: their records carry no FQAN",
                file=sys.stderr,
            )
        # cASO's neutron extractor looks up user None every run: only the
        # others' failed look-ups mean records without their owner's name
        lookups = sum(len(r.verdict.user_lookups) for r in runs if r.extractor != "neutron")
        failed = [k for r in runs if r.problems() for k in r.kinds]
        if problems and len(failed) == sum(len(r.kinds) for r in runs):
            outcome = "failed"
        elif problems or no_vo or mark_problem or lookups:
            outcome = "partial"
        else:
            outcome = "ok"
        counts: dict[str, object] = {
            "projects": max((len(r.verdict.projects) for r in runs), default=0),
            "records": sum(r.verdict.records for r in runs),
            "errors": len(problems),
            "window_from": min(r.start for r in runs).isoformat(),
            "window_to": end.isoformat(),
        }
        if watermark is not None:
            counts["watermark"] = watermark.isoformat()
        counts["types_ok"] = ",".join(k for r in runs if not r.problems() for k in r.kinds) or "-"
        counts["types_failed"] = ",".join(failed) or "-"
        counts["owner_lookups_failed"] = lookups
        if problems:
            # A fault we know (cloud unreachable, refused password...) says most.
            known = [found for p in problems if (found := explain_text(p))]
            first = known[0] if known else problems[0]
            reason = first + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
        elif mark_problem:
            reason = mark_problem
        elif lookups:
            reason = (
                f"{lookups} owner name look-up(s) failed: records without GlobalUserName; "
                "the account needs reader on the system (openstack role add --system all)"
            )
        elif no_vo:
            reason = (
                f"no VO ({self.config.vo_property} property) for project(s) "
                f"{', '.join(sorted(no_vo))}: set it on those projects"
            )
        else:
            reason = ""
        elapsed = time.monotonic() - began
        print(format_summary(job, outcome, counts, elapsed, reason), flush=True)
        return 1 if problems else 0

    def extract(
        self,
        extractor: Extractor,
        kinds: list[RecordType],
        start: datetime.datetime,
        end: datetime.datetime,
    ) -> Verdict:
        """Run cASO's ``extractor`` for [start, end] with TZ=UTC (it reads naive times as local)."""
        workdir = self.config.state_dir / "caso"  # cASO's lastrun files and lock
        workdir.mkdir(parents=True, exist_ok=True)
        # caso.conf holds the Keystone password: private, and gone after the run
        with tempfile.TemporaryDirectory(prefix="caso-conf-") as private:
            conf = Path(private) / "caso.conf"
            conf.touch(mode=0o600)
            text = casoconf.render(self.config, extractor, kinds)
            conf.write_text(text, encoding="utf-8")
            return self._run_caso(conf, start, end)

    def _run_caso(self, conf: Path, start: datetime.datetime, end: datetime.datetime) -> Verdict:
        command = [
            *self.config.caso_command,
            "--config-file",
            str(conf),
            "--extract-from",
            start.isoformat(),
            "--extract-to",
            end.isoformat(),
        ]
        try:
            done = subprocess.run(
                command,
                env={**os.environ, "TZ": "UTC"},
                capture_output=True,
                text=True,
                timeout=self.config.run_timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as expired:
            log = _text(expired.stderr) + _text(expired.stdout)
            verdict = judge(-1, log)
            verdict.errors.append(f"cASO killed after {self.config.run_timeout_s:.0f}s")
            return verdict
        except FileNotFoundError:
            verdict = Verdict(127)
            verdict.errors.append(f"cannot run {command[0]}: not installed")
            return verdict
        sys.stderr.write(done.stderr)
        return judge(done.returncode, done.stderr + done.stdout)


def _text(output: bytes | str | None) -> str:
    if isinstance(output, bytes):
        return output.decode("utf-8", "replace")
    return output or ""


def main(config_path: Path) -> int:
    return ExtractJob(config.load(config_path).extract).run()


def republish(config_path: Path, first: datetime.date, last: datetime.date) -> int:
    """Re-extract the days ``first`` to ``last`` (included) for the repository.

    The window ends at the end of ``last`` or now, whichever is earlier.
    """
    job = ExtractJob(config.load(config_path).extract)
    end = min(_midnight(last + datetime.timedelta(days=1)), job._end())
    return job.republish(_midnight(first), end)


def _midnight(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(), datetime.UTC)
