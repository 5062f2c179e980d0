"""The status page: ``status.collect``'s dict as one HTML document.

Self-contained on purpose: no script and nothing fetched, since the page is
opened from wherever an operator is and the appliance reaches nothing but
its cloud. The history charts are inline SVG; the page refreshes itself
(``<meta http-equiv="refresh">``). Every value is escaped. Times are UTC,
with their distance from the moment the page was made.
"""

from __future__ import annotations

import datetime
import html
from typing import Any

from fedcloud_appliance.status import service_ok

REFRESH_S = 30
# The chart: one bar per run, as tall as the run was long (relative to the
# longest run shown); runs too short to see still get a sliver.
BAR_W, BAR_GAP, CHART_H, MIN_BAR_H = 9, 3, 34, 4

STYLE = """
:root{--ok:#2e7d32;--partial:#e0a100;--failed:#c62828;--skipped:#9e9e9e;--running:#1565c0;
--bad-bg:#fde7e7;--warn-bg:#fff6d6;--line:#e2e5e9;--muted:#5f6b76}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,"DejaVu Sans",sans-serif;margin:0;background:#f4f6f8;color:#1d2329}
header{background:#1f3a5a;color:#fff;padding:14px 28px}
header h1{margin:0;font-size:21px;font-weight:600}
header .meta{margin:4px 0 0;color:#c9d6e3;font-size:13px}
header a{color:#fff}
main{padding:18px 28px 32px;max-width:1400px}
section{background:#fff;border:1px solid var(--line);border-radius:6px;padding:12px 16px;
margin:0 0 16px}
h2{font-size:16px;margin:0 0 10px}
h3{font-size:14px;margin:14px 0 6px}
table{border-collapse:collapse;width:100%}
th{text-align:left;font-weight:600;color:var(--muted);font-size:12px;text-transform:uppercase;
letter-spacing:.03em}
td,th{padding:6px 8px;border-bottom:1px solid var(--line);vertical-align:top}
tr:last-child td{border-bottom:0}
.muted,.when{color:var(--muted);font-size:12px}
.mono{font-family:"DejaVu Sans Mono",monospace;font-size:12px}
.nowrap,td.job,td.time{white-space:nowrap}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px;
font-weight:600;white-space:nowrap}
.badge.ok{background:var(--ok)}.badge.partial,.badge.pending{background:var(--partial)}
.badge.failed,.badge.error{background:var(--failed)}.badge.running{background:var(--running)}
.badge.skipped,.badge.never,.badge.never-synced{background:var(--skipped)}
.reason{color:var(--failed);overflow-wrap:anywhere}
#config-error{background:var(--bad-bg);border-color:var(--failed)}
pre{white-space:pre-wrap;overflow-wrap:anywhere;margin:0}
#config-error h2{color:var(--failed)}
#attention.all-well{border-left:5px solid var(--ok)}
#attention.problems{border-left:5px solid var(--failed)}
#attention ul{margin:0;padding-left:20px}
.figures{display:flex;flex-wrap:wrap;gap:12px}
.figure{flex:1 1 150px;border:1px solid var(--line);border-radius:6px;padding:8px 12px}
.figure .value{font-size:22px;font-weight:600}
.figure .label{color:var(--muted);font-size:12px}
svg.chart rect.ok{fill:var(--ok)}svg.chart rect.partial{fill:var(--partial)}
svg.chart rect.failed{fill:var(--failed)}svg.chart rect.skipped{fill:var(--skipped)}
svg.chart rect.running{fill:var(--running)}
tr.unhealthy td{background:var(--bad-bg)}
tr.starting td{background:var(--warn-bg)}
"""


def as_html(status: dict[str, Any]) -> str:
    now = _time(status["generated"]) or datetime.datetime.now(datetime.UTC)
    about = status["appliance"]
    site = f" &middot; {_e(about['site'])}" if about.get("site") else ""
    parts = [_config_error(status), _attention(status["attention"])]
    if "config_error" not in status:  # else nothing runs: no figures, no jobs to show
        parts += [
            _figures(status["figures"], status.get("images"), now),
            _jobs(status["jobs"], now),
            _images(status.get("images"), now),
            _regions(status.get("regions")),
        ]
    parts.append(_services(status["services"]))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{REFRESH_S}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>FedCloud appliance{site}</title><style>{STYLE}</style></head>
<body><header><h1>FedCloud appliance{site}</h1>
<p class="meta">host <b id="host">{_e(about["host"])}</b> &middot; version
<b id="version">{_e(about["version"])}</b> &middot; generated at
<span id="generated">{_e(_clock(now, seconds=True))}</span> &middot;
refreshes every {REFRESH_S} s &middot; <a href="status.json">JSON</a> &middot;
<a href="metrics">metrics</a></p></header>
<main>{"".join(parts)}</main></body></html>
"""


def _config_error(status: dict[str, Any]) -> str:
    if "config_error" not in status:
        return ""
    return (
        '<section id="config-error"><h2>Configuration error: no job runs until it is fixed</h2>'
        f"<pre>{_e(status['config_error'])}</pre></section>"
    )


def _attention(items: list[str]) -> str:
    if not items:
        return '<section id="attention" class="all-well"><b>All is well.</b></section>'
    listed = "".join(f"<li>{_e(item)}</li>" for item in items)
    return (
        f'<section id="attention" class="problems"><h2>Needs attention</h2><ul>{listed}</ul>'
        "</section>"
    )


def _figures(
    figures: dict[str, dict[str, Any]], images: dict[str, Any] | None, now: datetime.datetime
) -> str:
    def tile(key: str, label: str, value: object = None, as_of: str | None = None) -> str:
        figure = figures.get(key, {})
        shown = figure.get("value") if value is None else value
        when = figure.get("as_of") if as_of is None else as_of
        note = f"as of {_ago(_time(when), now)}" if when else "&nbsp;"
        return (
            f'<div class="figure" id="figure-{key}"><div class="value">'
            f'{_e(_figure(shown))}</div><div class="label">{label}</div>'
            f'<div class="when">{note}</div></div>'
        )

    tiles = [
        tile("bdii_entries", "BDII entries published"),
        tile("records_extracted", "accounting records extracted (last run)"),
        tile("messages_sent", "APEL messages sent (last run)"),
        tile("messages_kept", "APEL messages kept in the spool"),
        tile("messages_in_quarantine", "APEL messages in quarantine")
        if figures.get("messages_in_quarantine", {}).get("value") is not None
        else tile("messages_quarantined", "APEL messages quarantined (last run)"),
    ]
    if images is not None:
        counts: dict[str, int] = {}
        for image_list in images["lists"]:
            for state, count in image_list["counts"].items():
                counts[state] = counts.get(state, 0) + count
        shown = " / ".join(str(counts.get(s, 0)) for s in ("ok", "pending", "error"))
        tiles.append(tile("images", "images ok / pending / error", shown, ""))
    return f'<section><h2>At a glance</h2><div class="figures">{"".join(tiles)}</div></section>'


def _jobs(jobs: list[dict[str, Any]], now: datetime.datetime) -> str:
    rows = []
    for job in jobs:
        last = job["last_run"] or {}
        outcome = last.get("outcome", "never")
        if job["running_for_s"] is not None:
            state = (
                f'<span class="badge running">running</span> <span class="elapsed">for '
                f"{_e(_duration(job['running_for_s']))}</span>"
            )
        else:
            state = f'<span class="badge {_e(outcome)}">{_e(outcome)}</span>'
        started = _time(last.get("started"))
        when = (
            f'{_e(_clock(started))}<div class="when">{_e(_ago(started, now))}'
            f"{_e(_trigger(last.get('trigger')))}</div>"
            if started
            else '<span class="muted">never</span>'
        )
        took = _duration(last.get("duration_s")) if last.get("duration_s") is not None else "-"
        rows.append(
            f'<tr class="job" id="job-{_e(job["job"])}"><td class="job"><b>{_e(job["job"])}</b>'
            f'<div class="when mono">{_e(job["schedule"])}</div></td><td class="time">{state}'
            f'</td><td class="time">{when}</td><td class="time">{_e(took)}</td>'
            f'<td>{_chart(job)}</td><td class="time">{_next(job, now)}</td>'
            f"<td>{_details(last)}</td></tr>"
        )
    if not rows:
        rows.append('<tr><td colspan="7" class="muted">no job is enabled</td></tr>')
    return (
        '<section id="jobs"><h2>Jobs</h2><table><tr><th>job</th><th>state</th><th>last run</th>'
        "<th>took</th><th>last runs</th><th>next run</th><th>details</th></tr>"
        f"{''.join(rows)}</table></section>"
    )


def _chart(job: dict[str, Any]) -> str:
    runs = job["history"]
    if not runs:
        return '<span class="muted">no runs yet</span>'
    lengths = [
        (job["running_for_s"] or 0) if run["outcome"] == "running" else (run["duration_s"] or 0)
        for run in runs
    ]
    longest = max(lengths) or 1
    bars = []
    for i, (run, length) in enumerate(zip(runs, lengths, strict=True)):
        height = max(MIN_BAR_H, round(CHART_H * length / longest))
        tip = f"{_clock(_time(run['started']))}: {run['outcome']}, {_duration(length)}"
        if run["reason"] and run["outcome"] != "ok":
            tip += f" - {run['reason']}"
        bars.append(
            f'<rect class="bar {_e(run["outcome"])}" x="{i * (BAR_W + BAR_GAP)}" '
            f'y="{CHART_H - height}" width="{BAR_W}" height="{height}" rx="1">'
            f"<title>{_e(tip)}</title></rect>"
        )
    width = len(runs) * (BAR_W + BAR_GAP) - BAR_GAP
    return (
        f'<svg class="chart" width="{width}" height="{CHART_H}" viewBox="0 0 {width} {CHART_H}" '
        f'role="img" aria-label="durations of the last {len(runs)} runs">{"".join(bars)}</svg>'
        f'<div class="when">longest {_e(_duration(max(lengths)))}</div>'
    )


def _next(job: dict[str, Any], now: datetime.datetime) -> str:
    shown = []
    if job["retry"]:
        retry = job["retry"]
        at = _time(retry["at"])
        shown.append(
            f'<div class="retry"><span class="badge partial">retry {retry["attempt"]} of '
            f'{retry["of"]}</span> {_e(_clock(at))}<div class="when">{_e(_ago(at, now))}'
            "</div></div>"
        )
    at = _time(job["next_run"])
    shown.append(
        f'{_e(_clock(at))}<div class="when">{_e(_ago(at, now))}</div>'
        if at
        else '<span class="muted">not scheduled</span>'
    )
    return "".join(shown)


def _details(last: dict[str, Any]) -> str:
    if not last:
        return ""
    if last.get("reason") and last.get("outcome") not in ("ok", "running"):
        return f'<span class="reason">{_e(last["reason"])}</span>'
    # The counts; times and words are in status.json.
    fields = {k: v for k, v in (last.get("fields") or {}).items() if v.isdigit()}
    if fields:
        shown = " ".join(f"{key}={value}" for key, value in fields.items())
        return f'<span class="mono">{_e(shown)}</span>'
    return _e(last.get("summary") or "")


def _images(images: dict[str, Any] | None, now: datetime.datetime) -> str:
    if images is None:
        return ""
    backend = images["backend"]
    heart = (
        "cloudkeeper-os has never run on this spool"
        if backend is None
        else f"cloudkeeper-os last heartbeat {_duration(backend['heartbeat_age_s'])} ago; "
        f"{backend['doing'] or 'idle'}"
    )
    parts = [f'<section id="images"><h2>Images</h2><p class="muted">{_e(heart)}</p>']
    if not images["lists"]:
        parts.append(
            '<p id="never-synced"><span class="badge never-synced">never synced</span> no status '
            f"files in {_e(images['state_dir'])} yet: the first image-sync writes them</p>"
        )
    for image_list in images["lists"]:
        state = image_list["state"]
        checked = _time(image_list["checked"])
        parts.append(
            f'<h3 class="list" id="list-{_e(image_list["list"])}">list {_e(image_list["list"])} '
            f'<span class="badge {_e(state.replace(" ", "-"))}">{_e(state)}</span> '
            f'<span class="when">{_e(_clock(checked) if checked else "")} '
            f"{_e(image_list['reason'])}</span></h3>"
        )
        parts += [f'<div class="reason">{_e(error)}</div>' for error in image_list["errors"]]
        rows = [
            f'<tr class="image {_e(image["state"])}"><td class="mono">{_e(image["image"])}</td>'
            f'<td><span class="badge {_e(image["state"])}">{_e(image["state"])}</span>'
            f' <span class="muted">{_e(image["action"])}</span></td>'
            f'<td>{_e(image["version"] or "-")}</td><td class="mono glance">'
            f"{_e(image['glance_id'] or '-')}</td><td>{_changed(image['changed'], now)}</td>"
            f'<td class="{"reason" if image["state"] == "error" else ""}">'
            f"{_e(image['reason'])}</td></tr>"
            for image in image_list["images"]
        ]
        if rows:
            parts.append(
                "<table><tr><th>image</th><th>state</th><th>version</th><th>Glance id</th>"
                f"<th>last change</th><th>reason</th></tr>{''.join(rows)}</table>"
            )
        else:
            parts.append('<p class="muted">no image recorded for this list yet</p>')
    return "".join(parts) + "</section>"


def _regions(regions: dict[str, Any] | None) -> str:
    """region-sync's last outcome per target region."""
    if regions is None:
        return ""
    parts = ['<section id="regions"><h2>Regions</h2>']
    if not regions["regions"]:
        problem = regions.get("error") or "the first region-sync writes its status"
        parts.append(
            f'<p><span class="badge never-synced">never synced</span> {_e(problem)}</p></section>'
        )
        return "".join(parts)
    parts.append(
        f'<p class="muted">last region-sync {_e(regions["finished"])}; master read ratio '
        f"{_e(regions['master_read_ratio'])}</p>"
    )
    rows = [
        f'<tr class="region {_e(r["outcome"])}"><td class="mono">{_e(r["region"])}</td>'
        f'<td><span class="badge {_e(r["outcome"])}">{_e(r["outcome"])}</span></td>'
        f"<td>{_e(' '.join(f'{k}={v}' for k, v in sorted(r['images'].items())) or '-')}</td>"
        f'<td class="{"reason" if r["outcome"] != "ok" else ""}">{_e(r["reason"])}</td></tr>'
        for r in regions["regions"]
    ]
    parts.append(
        "<table><tr><th>region</th><th>outcome</th><th>images</th><th>reason</th></tr>"
        f"{''.join(rows)}</table></section>"
    )
    return "".join(parts)


def _changed(changed: str | None, now: datetime.datetime) -> str:
    when = _time(changed)
    if when is None:
        return "-"
    return f'{_e(_clock(when))}<div class="when">{_e(_ago(when, now))}</div>'


def _services(services: list[dict[str, str]] | dict[str, str]) -> str:
    if isinstance(services, dict):
        rows = f'<tr class="unhealthy"><td colspan="4">{_e(services["error"])}</td></tr>'
    else:
        rows = (
            "".join(
                f'<tr class="service {_service_class(s)}" id="service-{_e(s["service"])}">'
                f'<td><b>{_e(s["service"])}</b></td><td class="mono">{_e(s["container"])}</td>'
                f"<td>{_e(s['state'])}</td><td>{_e(s['health'])}</td></tr>"
                for s in services
            )
            or '<tr><td colspan="4" class="muted">no service container found</td></tr>'
        )
    return (
        '<section id="services"><h2>Services</h2><table><tr><th>service</th><th>container</th>'
        f"<th>state</th><th>health</th></tr>{rows}</table></section>"
    )


def _service_class(service: dict[str, str]) -> str:
    if not service_ok(service):
        return "unhealthy"
    return "starting" if service["health"] == "starting" else "healthy"


def _figure(value: object) -> str:
    if value is None:
        return "-"
    return f"{value:,}".replace(",", "\u2009") if isinstance(value, int) else str(value)


def _trigger(trigger: str | None) -> str:
    return f" ({trigger})" if trigger and trigger != "schedule" else ""


def _time(value: str | None) -> datetime.datetime | None:
    """An ISO 8601 time; None for none, or for one a damaged status file holds."""
    try:
        parsed = datetime.datetime.fromisoformat((value or "").replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def _clock(value: datetime.datetime | None, seconds: bool = False) -> str:
    if value is None:
        return "-"
    shown = "%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC"
    return value.astimezone(datetime.UTC).strftime(shown)


def _ago(value: datetime.datetime | None, now: datetime.datetime) -> str:
    if value is None:
        return ""
    seconds = (now - value).total_seconds()
    if abs(seconds) < 60:
        return "just now"
    return f"{_duration(seconds)} ago" if seconds > 0 else f"in {_duration(-seconds)}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 9.95 and not float(seconds).is_integer():
        return f"{seconds:.1f} s"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds and minutes < 10 else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} d {hours % 24} h"


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))
