"""What ``appliance status`` shows: every job's last and next run, every
service's health. One builder, three views (text, JSON, HTML)."""

from __future__ import annotations

import datetime
import html
import json
from typing import Any

import docker
import docker.errors
import requests.exceptions

from fedcloud_appliance.docker_run import LABEL_PREFIX
from fedcloud_appliance.scheduler import Supervisor


def _iso(value: datetime.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def collect(
    supervisor: Supervisor, client: docker.DockerClient | None, project: str | None = None
) -> dict[str, Any]:
    next_runs = supervisor.next_runs()
    jobs = []
    for name, spec in supervisor.specs.items():
        # A skipped run (another was in progress) says nothing about the job's state.
        last = supervisor.history.last_attempt(name) or supervisor.history.last(name)
        jobs.append(
            {
                "job": name,
                "schedule": spec.schedule,
                "next_run": _iso(next_runs.get(name)),
                "last_run": None
                if last is None
                else {
                    "started": _iso(last.started),
                    "finished": _iso(last.finished),
                    "trigger": last.trigger,
                    "outcome": last.outcome,
                    "duration_s": last.duration_s,
                    "summary": last.summary,
                    "reason": last.reason,
                },
            }
        )
    return {
        "generated": _iso(datetime.datetime.now(datetime.UTC)),
        "jobs": jobs,
        "services": services(client, project),
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


def as_json(status: dict[str, Any]) -> str:
    return json.dumps(status, indent=2)


def as_text(status: dict[str, Any]) -> str:
    lines = [f"{'JOB':<14} {'LAST RUN':<26} {'OUTCOME':<8} {'TOOK':>7}  NEXT RUN"]
    for job in status["jobs"]:
        last = job["last_run"] or {}
        took = f"{last['duration_s']:.0f}s" if last.get("duration_s") is not None else "-"
        lines.append(
            f"{job['job']:<14} {last.get('started') or 'never':<26} "
            f"{last.get('outcome', '-'):<8} {took:>7}  {job['next_run'] or '-'}"
        )
        detail = last.get("summary") or last.get("reason")
        if detail:
            lines.append(f"{'':<14} {detail}")
    lines.append("")
    services_ = status["services"]
    if isinstance(services_, dict):
        lines.append(f"services: {services_['error']}")
    else:
        lines.append(f"{'SERVICE':<20} {'STATE':<10} HEALTH")
        lines += [f"{s['service']:<20} {s['state']:<10} {s['health']}" for s in services_]
    return "\n".join(lines)


def as_html(status: dict[str, Any]) -> str:
    def cell(value: object) -> str:
        return f"<td>{html.escape('' if value is None else str(value))}</td>"

    rows = []
    for job in status["jobs"]:
        last = job["last_run"] or {}
        outcome = last.get("outcome", "never")
        rows.append(
            f'<tr class="{html.escape(outcome)}">'
            + "".join(
                cell(v)
                for v in (
                    job["job"],
                    last.get("started"),
                    outcome,
                    last.get("summary") or last.get("reason"),
                    job["next_run"],
                )
            )
            + "</tr>"
        )
    services_ = status["services"]
    if isinstance(services_, dict):
        service_rows = f"<tr>{cell(services_['error'])}</tr>"
    else:
        service_rows = "".join(
            f"<tr>{cell(s['service'])}{cell(s['state'])}{cell(s['health'])}</tr>" for s in services_
        )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="30">
<title>FedCloud appliance status</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .6em}}.failed{{background:#fdd}}
.ok{{background:#dfd}}.partial,.skipped{{background:#ffd}}</style></head>
<body><h1>FedCloud appliance</h1><p>generated {html.escape(status["generated"])}
(<a href="status.json">JSON</a>)</p>
<h2>Jobs</h2><table><tr><th>job</th><th>last run</th><th>outcome</th><th>summary</th>
<th>next run</th></tr>{"".join(rows)}</table>
<h2>Services</h2><table><tr><th>service</th><th>state</th><th>health</th></tr>
{service_rows}</table></body></html>
"""
