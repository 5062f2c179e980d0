import datetime
import json
import urllib.request

from fedcloud_appliance import status, web
from fedcloud_appliance.history import History
from fedcloud_appliance.jobspec import JobSpec
from fedcloud_appliance.scheduler import Supervisor

SPECS = [
    JobSpec("image-sync", "img", ("x",), "0 */4 * * *", datetime.timedelta(hours=1)),
    JobSpec("bdii-publish", "img", ("x",), "*/30 * * * *", datetime.timedelta(hours=1)),
]


def supervisor(tmp_path):
    def run(spec, record):
        if spec.name == "image-sync":
            return record.finish(0, "image-sync ok added=3 duration=9.0s\n")
        return record.finish(1, "slapd refused the update\n")

    sup = Supervisor(SPECS, run, History(tmp_path / "h.sqlite"), tmp_path / "locks")
    for spec in SPECS:
        sup.run_job(spec.name)
    return sup


def test_collects_last_and_next_run_of_every_job(tmp_path):
    report = status.collect(supervisor(tmp_path), None)
    jobs = {j["job"]: j for j in report["jobs"]}
    assert jobs["image-sync"]["last_run"]["outcome"] == "ok"
    assert jobs["image-sync"]["last_run"]["summary"] == "image-sync ok added=3 duration=9.0s"
    assert jobs["bdii-publish"]["last_run"]["reason"] == "exit status 1: slapd refused the update"
    next_sync = datetime.datetime.fromisoformat(jobs["image-sync"]["next_run"])
    assert next_sync.hour % 4 == 0 and next_sync.minute == 0
    assert report["services"] == {"error": "no Docker engine configured"}


def test_text_view_shows_outcomes_and_summaries(tmp_path):
    text = status.as_text(status.collect(supervisor(tmp_path), None))
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["JOB", "LAST", "RUN"]
    assert any(line.startswith("image-sync") and " ok " in line for line in lines)
    assert any(line.startswith("bdii-publish") and " failed " in line for line in lines)
    assert "image-sync ok added=3 duration=9.0s" in text


def test_web_page_serves_html_and_the_same_json(tmp_path):
    sup = supervisor(tmp_path)
    server = web.serve(0, lambda: status.collect(sup, None), host="127.0.0.1")
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        page = urllib.request.urlopen(f"{base}/").read().decode()
        data = json.loads(urllib.request.urlopen(f"{base}/status.json").read())
    finally:
        server.shutdown()
    assert '<tr class="failed"><td>bdii-publish</td>' in page
    assert '<tr class="ok"><td>image-sync</td>' in page
    assert {j["job"] for j in data["jobs"]} == {"image-sync", "bdii-publish"}


def test_a_skipped_run_does_not_hide_the_last_real_outcome(tmp_path):
    sup = supervisor(tmp_path)
    with sup._exclusive("image-sync"):  # as if a scheduled run were in progress
        assert sup.run_job("image-sync", "catch-up").outcome == "skipped"
    last = {j["job"]: j for j in status.collect(sup, None)["jobs"]}["image-sync"]["last_run"]
    assert (last["outcome"], last["summary"]) == ("ok", "image-sync ok added=3 duration=9.0s")
