"""The hourly extraction job: cASO over a window the appliance owns.

``run()`` is three steps: pick the window (own watermark → now), run cASO
for exactly that window, and judge the run before moving the watermark.
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
from fedcloud_common.settings.accounting import ExtractSettings
from fedcloud_common.summary import format_summary

JOB = "caso-extract"
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
    for line in log.splitlines():
        match = _LEVEL.match(line)
        # a record's first line carries oslo's context ("[-]", "[req-...]");
        # the lines of a traceback repeat the prefix without it
        if match is None or not match["text"].startswith("["):
            continue
        text = match["text"].split("] ", 1)[-1]
        if (started := _STARTED.search(text)) is not None:
            verdict.projects.add(started["project"])
        elif (done := _DONE.search(text)) is not None:
            verdict.finished[done["project"]] = int(done["count"])
        elif (no_vo := _NO_VO.search(text)) is not None and "mapping file" not in text:
            verdict.no_vo.add(no_vo["project"])
        if match["level"] in ("ERROR", "CRITICAL") or _NO_PROJECTS in text:
            verdict.errors.append(text)
    return verdict


class ExtractJob:
    def __init__(self, settings: ExtractSettings, now: datetime.datetime | None = None) -> None:
        self.config = settings
        self.watermark = Watermark(settings.state_dir, settings.start_date)
        self._now = now

    def run(self) -> int:
        """Window → cASO → judge; prints the summary line, returns the exit code."""
        began = time.monotonic()
        start = self.watermark.extracted_until()
        end = (self._now or datetime.datetime.now(datetime.UTC)).replace(microsecond=0)
        verdict = self.extract(start, end)
        problems = verdict.problems()
        if not problems:
            self.watermark.advance(end)
        for problem in problems:
            print(f"{JOB}: {problem}", file=sys.stderr)
        if verdict.no_vo:
            print(
                f"{JOB}: no VO ({self.config.vo_property} property) for projects "
                f"{','.join(sorted(verdict.no_vo))}: their records carry no FQAN",
                file=sys.stderr,
            )
        outcome = "failed" if problems else ("partial" if verdict.no_vo else "ok")
        counts = {
            "projects": len(verdict.projects),
            "records": verdict.records,
            "errors": len(problems),
            "window_from": start.isoformat(),
            "window_to": end.isoformat(),
            "watermark": (end if not problems else start).isoformat(),
        }
        if problems:
            # A fault we know (cloud unreachable, refused password...) says most.
            known = [found for p in problems if (found := explain_text(p))]
            first = known[0] if known else problems[0]
            reason = first + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
        elif verdict.no_vo:
            reason = (
                f"no VO ({self.config.vo_property} property) for project(s) "
                f"{', '.join(sorted(verdict.no_vo))}: set it on those projects"
            )
        else:
            reason = ""
        elapsed = time.monotonic() - began
        print(format_summary(JOB, outcome, counts, elapsed, reason), flush=True)
        return 1 if problems else 0

    def extract(self, start: datetime.datetime, end: datetime.datetime) -> Verdict:
        """Run cASO for [start, end] with TZ=UTC (it reads naive times as local)."""
        workdir = self.config.state_dir / "caso"  # cASO's lastrun files and lock
        workdir.mkdir(parents=True, exist_ok=True)
        # caso.conf holds the Keystone password: private, and gone after the run
        with tempfile.TemporaryDirectory(prefix="caso-conf-") as private:
            conf = Path(private) / "caso.conf"
            conf.touch(mode=0o600)
            conf.write_text(casoconf.render(self.config), encoding="utf-8")
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
