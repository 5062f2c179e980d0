"""What ``appliance status`` and the status page show.

One builder, ``collect``, reads everything an operator asks about into one
dict: each job's last runs (charted on the page), next run and pending
retry; image replication's lists and images, from its status files; the
figures the jobs' own summary lines report (BDII entries, accounting
records); the services' health; and what needs attention. The text and JSON
views are here; the HTML page, which reads the same dict, is ``page.py``.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import json
import socket
from importlib.metadata import version
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions

from fedcloud_appliance.docker_run import LABEL_PREFIX
from fedcloud_appliance.execution import Execution
from fedcloud_appliance.scheduler import Supervisor
from fedcloud_common.imagestatus import StatusFiles
from fedcloud_common.regionstatus import STATUS_FILE, RunRecord
from fedcloud_common.summary import parse_summary

# Runs per job the page charts: a day of half-hourly publishes, days of syncs.
HISTORY_RUNS = 20

# Figures read from the jobs' own summary lines: figure -> (job, summary key).
# The keys are what the jobs print: fedcloud_bdii.publish (UpdateStats),
# fedcloud_accounting.extract and .send, fedcloud_cloudkeeper.cli. APEL's
# sent/kept/quarantined count spool messages, each holding many records;
# quarantined is per run, in_quarantine what still waits there.
FIGURES: dict[str, tuple[str, str]] = {
    "bdii_entries": ("bdii-publish", "entries"),
    "records_extracted": ("caso-extract", "records"),
    "messages_sent": ("apel-send", "sent"),
    "messages_kept": ("apel-send", "kept"),
    "messages_quarantined": ("apel-send", "quarantined"),
    "messages_in_quarantine": ("apel-send", "in_quarantine"),
    "bytes_downloaded": ("image-sync", "downloaded_bytes"),
    "bytes_uploaded": ("image-sync", "uploaded_bytes"),
}


@dataclasses.dataclass(frozen=True)
class Appliance:
    """Who this appliance is, and where image replication keeps its status files.

    Built from the config by the CLI, so this module never guesses a path:
    ``image_state_dir`` is cloudkeeper's rendered ``state_dir`` (None while
    image replication is not enabled), ``image_lists`` the subscribed lists,
    shown as "never synced" until their first check.
    """

    site: str | None = None
    host: str | None = None
    image_state_dir: Path | None = None
    image_lists: tuple[str, ...] = ()
    # region-sync's state directory (None while regions is not enabled).
    region_state_dir: Path | None = None


def collect(
    supervisor: Supervisor,
    client: docker.DockerClient | None,
    project: str | None = None,
    appliance: Appliance | None = None,
) -> dict[str, Any]:
    """Everything at once: jobs, figures, images, services, then what needs attention."""
    appliance = appliance or Appliance()
    now = _now()
    next_runs = supervisor.next_runs()
    recent = {name: supervisor.history.recent(name, HISTORY_RUNS) for name in supervisor.specs}
    report: dict[str, Any] = {
        "generated": _iso(now),
        "appliance": _about(appliance.site, appliance.host),
        "jobs": [
            _job(supervisor, name, recent[name], next_runs.get(name), now)
            for name in supervisor.specs
        ],
        "figures": figures(recent),
        "images": images(appliance.image_state_dir, appliance.image_lists),
        "regions": regions(appliance.region_state_dir),
        "services": services(client, project),
    }
    report["attention"] = attention(report)
    return report


def regions(state_dir: Path | None) -> dict[str, Any] | None:
    """Each target region's outcome in the last region-sync (None: not enabled)."""
    if state_dir is None:
        return None
    path = state_dir / STATUS_FILE
    try:
        record = RunRecord.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return {"finished": None, "regions": [], "master_read_ratio": None}
    except (OSError, ValueError) as error:
        return {"finished": None, "regions": [], "error": f"{path}: {error}"}
    return {
        "finished": _iso(record.finished),
        "master_read_ratio": round(record.master_read_ratio, 2),
        "regions": [
            {
                "region": r.region,
                "outcome": r.outcome,
                "reason": r.reason,
                "images": r.after or r.before,
                "done": r.done,
            }
            for r in record.regions
        ],
    }


def _job(
    supervisor: Supervisor,
    name: str,
    recent: list[Execution],
    next_run: datetime.datetime | None,
    now: datetime.datetime,
) -> dict[str, Any]:
    # A skipped run (another was in progress) says nothing about the job's state.
    last = supervisor.history.last_attempt(name) or supervisor.history.last(name)
    retry = supervisor.retries.get(name)
    return {
        "job": name,
        "schedule": supervisor.specs[name].schedule,
        "next_run": _iso(next_run),
        "retry": None
        if retry is None
        else {"attempt": retry.attempt, "of": retry.of, "at": _iso(retry.at)},
        "running_for_s": None
        if last is None or last.outcome != "running"
        else round((now - last.started).total_seconds()),
        "last_run": None if last is None else _run(last, full=True),
        "history": [_run(record) for record in reversed(recent)],  # oldest first, as charted
    }


def config_problem(
    problem: str, client: docker.DockerClient | None, project: str | None = None
) -> dict[str, Any]:
    """What the page shows while appliance.yaml is invalid: why, and the services."""
    report: dict[str, Any] = {
        "generated": _iso(_now()),
        "appliance": _about(None, None),
        "config_error": problem,
        "jobs": [],
        "figures": figures({}),
        "images": None,
        "regions": None,
        "services": services(client, project),
    }
    report["attention"] = attention(report)
    return report


def _run(record: Execution, full: bool = False) -> dict[str, Any]:
    run: dict[str, Any] = {
        "started": _iso(record.started),
        "finished": _iso(record.finished),
        "trigger": record.trigger,
        "outcome": record.outcome,
        "duration_s": record.duration_s,
        "reason": record.reason,
    }
    if full:
        parsed = parse_summary(record.summary)
        run |= {"summary": record.summary, "fields": parsed[2] if parsed else {}}
    return run


def figures(recent: dict[str, list[Execution]]) -> dict[str, dict[str, Any]]:
    """Each figure from the newest finished run whose summary carries it (None: unknown).

    The newest such run, not the last run: a publish that failed before it
    counted anything leaves the BDII as the run before left it.
    """
    found = {}
    for figure, (job, key) in FIGURES.items():
        value, as_of = None, None
        for record in recent.get(job, []):
            parsed = parse_summary(record.summary) if record.outcome != "running" else None
            if parsed and key in parsed[2]:
                value, as_of = _number(parsed[2][key]), _iso(record.finished)
                break
        found[figure] = {"job": job, "value": value, "as_of": as_of}
    return found


def images(state_dir: Path | None, subscribed: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """Per list and per image, what image replication last recorded (None: not enabled)."""
    if state_dir is None:
        return None
    files = StatusFiles(state_dir)
    checked = files.lists()
    lists = []
    for name in [*subscribed, *sorted(set(checked) - set(subscribed))]:
        check = checked.get(name)
        outcomes = files.images(name)
        lists.append(
            {
                "list": name,
                "state": check.state if check else "never synced",
                "reason": check.reason if check else "never synced",
                "checked": check.checked if check else None,
                "errors": check.errors if check else [],
                "subscribed": name in subscribed,
                "counts": dict(collections.Counter(o.state for o in outcomes.values())),
                "images": [
                    {"image": key, **outcome.model_dump()}
                    for key, outcome in sorted(outcomes.items())
                ],
            }
        )
    beat, age = files.heartbeat()
    return {
        "state_dir": str(state_dir),
        "never_synced": not checked,
        "lists": lists,
        "backend": None
        if age is None
        else {"heartbeat_age_s": round(age), "doing": beat.doing if beat else None},
    }


def services(
    client: docker.DockerClient | None, project: str | None = None
) -> list[dict[str, str]] | dict[str, str]:
    """Health of the long-running services, from their container labels.

    Only this appliance's (compose project or swarm stack ``project``): a
    second appliance or the tests' copy on the same engine is not ours.
    """
    if client is None:
        return {"error": "no Docker engine configured"}
    try:
        containers = client.containers.list(
            all=True, filters={"label": f"{LABEL_PREFIX}.role=service"}
        )
    except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
        return {"error": f"Docker engine unreachable: {error}"}
    found = []
    for container in containers:
        labels = container.labels
        owner = labels.get("com.docker.compose.project") or labels.get("com.docker.stack.namespace")
        if project is not None and owner != project:
            continue
        state = container.attrs.get("State", {})
        found.append(
            {
                "service": container.labels.get(f"{LABEL_PREFIX}.service", container.name),
                "container": container.name,
                "state": state.get("Status", "unknown"),
                "health": state.get("Health", {}).get("Status", "no healthcheck"),
            }
        )
    return sorted(found, key=lambda s: s["service"])


def service_ok(service: dict[str, str]) -> bool:
    """Running, and healthy if it has a health check (starting counts: not yet known)."""
    return service["state"] == "running" and service["health"] != "unhealthy"


def attention(report: dict[str, Any]) -> list[str]:
    """What an operator should look at, one line each, worst first; empty: all is well."""
    found = []
    if "config_error" in report:
        found.append("the configuration is invalid: no job runs until it is fixed")
    for job in report["jobs"]:
        last = job["last_run"] or {}
        if last.get("outcome") in ("failed", "partial"):
            found.append(f"{job['job']} {last['outcome']}: {last.get('reason') or 'no reason'}")
    services_ = report["services"]
    if isinstance(services_, dict):
        found.append(f"services: {services_['error']}")
    else:
        found += [
            f"service {s['service']} is {s['state']} ({s['health']})"
            for s in services_
            if not service_ok(s)
        ]
    for image_list in (report["images"] or {}).get("lists", []):
        if image_list["state"] == "error":
            found.append(f"image list {image_list['list']}: {image_list['reason']}")
        if bad := image_list["counts"].get("error"):
            found.append(f"image list {image_list['list']}: {bad} image(s) in error")
    for region in (report.get("regions") or {}).get("regions", []):
        if region["outcome"] != "ok":
            found.append(f"region {region['region']} {region['outcome']}: {region['reason']}")
    if quarantine := _quarantine(report["figures"]):
        found.append(f"{quarantine}: see apel-send's quarantine directory")
    return found


def _quarantine(figures: dict[str, dict[str, Any]]) -> str:
    """Messages waiting in quarantine (or, if the send does not say, quarantined last run)."""
    waiting = figures["messages_in_quarantine"]["value"]
    if isinstance(waiting, int):
        return f"{waiting} APEL message(s) in quarantine" if waiting else ""
    last = figures["messages_quarantined"]["value"]
    return f"apel-send quarantined {last} APEL message(s)" if isinstance(last, int) and last else ""


def as_json(status: dict[str, Any]) -> str:
    return json.dumps(status, indent=2)


def as_text(status: dict[str, Any]) -> str:
    lines = []
    if "config_error" in status:
        lines.append("CONFIGURATION ERROR (no job runs until it is fixed):")
        lines.append(f"{status['config_error']}\n")
    lines += [f"{'JOB':<14} {'LAST RUN':<26} {'OUTCOME':<8} {'TOOK':>7}  NEXT RUN"]
    for job in status["jobs"]:
        last = job["last_run"] or {}
        took = f"{last['duration_s']:.0f}s" if last.get("duration_s") is not None else "-"
        lines.append(
            f"{job['job']:<14} {last.get('started') or 'never':<26} "
            f"{last.get('outcome', '-'):<8} {took:>7}  {job['next_run'] or '-'}"
        )
        if job.get("running_for_s") is not None:
            lines.append(f"{'':<14} running for {job['running_for_s']} s")
        if last.get("reason") and last.get("outcome") not in ("ok", "running"):
            lines.append(f"{'':<14} reason: {last['reason']}")
        elif last.get("summary"):
            lines.append(f"{'':<14} {last['summary']}")
        if job.get("retry"):
            retry = job["retry"]
            lines.append(f"{'':<14} retry {retry['attempt']} of {retry['of']} at {retry['at']}")
    if status.get("images") is not None:
        lines.append("")
        lines += _images_text(status["images"])
    if status.get("regions") is not None:
        lines.append("")
        lines += _regions_text(status["regions"])
    lines.append("")
    services_ = status["services"]
    if isinstance(services_, dict):
        lines.append(f"services: {services_['error']}")
    else:
        lines.append(f"{'SERVICE':<20} {'STATE':<10} HEALTH")
        lines += [f"{s['service']:<20} {s['state']:<10} {s['health']}" for s in services_]
    if status.get("attention"):
        lines += ["", "NEEDS ATTENTION:", *(f"  {item}" for item in status["attention"])]
    return "\n".join(lines)


def _images_text(found: dict[str, Any]) -> list[str]:
    if found["never_synced"] and not found["lists"]:
        return ["image lists: never synced"]
    lines = []
    for image_list in found["lists"]:
        lines.append(f"list {image_list['list']}: {image_list['state']}: {image_list['reason']}")
        lines += [
            f"  {image['image']}: {image['state']} {image['version'] or '-'} "
            f"{image['glance_id'] or '-'}: {image['reason']}"
            for image in image_list["images"]
        ]
    return lines


def _regions_text(found: dict[str, Any]) -> list[str]:
    if not found["regions"]:
        return [f"regions: {found.get('error') or 'never synced'}"]
    lines = [f"{'REGION':<24} {'OUTCOME':<8} IMAGES (last region-sync {found['finished']})"]
    for region in found["regions"]:
        counts = " ".join(f"{k}={v}" for k, v in sorted(region["images"].items())) or "-"
        lines.append(f"{region['region']:<24} {region['outcome']:<8} {counts}")
        if region["reason"]:
            lines.append(f"{'':<24} reason: {region['reason']}")
    return lines


def _about(site: str | None, host: str | None) -> dict[str, str | None]:
    return {
        "site": site,
        "host": host or socket.gethostname(),
        "version": version("fedcloud-appliance"),
    }


def _number(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _iso(value: datetime.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None
