"""Each job run ends with one structured line in the supervisor's log."""

import json
import logging

from fedcloud_appliance import execution
from fedcloud_appliance.runlog import RunLog, line


def failed_run():
    return execution.start("image-sync", "retry").finish(
        1, "image-sync failed applied=0 duration=3.0s -- list demo: Glance refused the upload\n"
    )


def test_a_text_line_has_the_job_outcome_duration_and_reason():
    text = line(failed_run())
    assert text.startswith("job-run job=image-sync trigger=retry outcome=failed duration_s=")
    assert 'reason="list demo: Glance refused the upload"' in text


def test_a_json_line_for_log_collectors():
    record = json.loads(line(failed_run(), "json"))
    assert record["event"] == "job-run" and record["outcome"] == "failed"
    assert record["reason"] == "list demo: Glance refused the upload"
    assert record["summary"].startswith("image-sync failed applied=0")


def test_a_run_started_by_hand_also_reaches_the_containers_output(tmp_path, monkeypatch, caplog):
    from fedcloud_appliance import runlog

    output = tmp_path / "pid1-stdout"
    monkeypatch.setattr(runlog, "CONTAINER_OUTPUT", output)
    with caplog.at_level(logging.INFO, logger="appliance.runs"):
        RunLog("json", side_process=True)(failed_run())
    assert json.loads(output.read_text())["job"] == "image-sync"
    assert len([r for r in caplog.records if r.name == "appliance.runs"]) == 1  # once


def test_the_supervisor_reports_every_run_exactly_once(tmp_path):
    import datetime

    from fedcloud_appliance.history import History
    from fedcloud_appliance.jobspec import JobSpec
    from fedcloud_appliance.scheduler import Supervisor

    seen = []
    spec = JobSpec("bdii-publish", "img", ("x",), "*/30 * * * *", datetime.timedelta(minutes=5))
    history = History(tmp_path / "h.sqlite")
    ran = lambda s, r: r.finish(0, "bdii-publish ok duration=1.0s\n")  # noqa: E731
    sup = Supervisor([spec], ran, history, tmp_path / "locks", report=seen.append)
    sup.run_job("bdii-publish", "manual")
    assert [(r.job, r.trigger, r.outcome) for r in seen] == [("bdii-publish", "manual", "ok")]
