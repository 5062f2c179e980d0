import datetime

from fedcloud_appliance import execution
from fedcloud_appliance.history import History


def test_records_survive_a_restart(tmp_path):
    first = History(tmp_path / "h.sqlite")
    record = execution.start("image-sync", "schedule")
    row = first.begin(record)
    first.end(row, record.finish(0, "image-sync ok added=1 duration=2.0s\n"))

    again = History(tmp_path / "h.sqlite").last("image-sync")
    assert again.outcome == "ok"
    assert again.summary == "image-sync ok added=1 duration=2.0s"
    assert again.started == record.started
    assert again.finished == record.finished


def test_a_run_cut_short_by_a_stop_is_marked_failed(tmp_path):
    history = History(tmp_path / "h.sqlite")
    history.begin(execution.start("bdii-publish", "schedule"))
    assert History(tmp_path / "h.sqlite").mark_interrupted() == 1
    last = history.last("bdii-publish")
    assert last.outcome == "failed"
    assert "supervisor stopped" in last.reason


def test_keeps_only_the_newest_runs_per_job(tmp_path):
    history = History(tmp_path / "h.sqlite", keep_per_job=3)
    base = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    for hour in range(5):
        record = execution.Execution("apel-send", "schedule", base + datetime.timedelta(hours=hour))
        history.end(history.begin(record), record.finish(0, ""))
    assert [r.started.hour for r in history.recent("apel-send")] == [4, 3, 2]


def test_skips_are_not_attempts(tmp_path):
    history = History(tmp_path / "h.sqlite")
    ran = execution.start("caso-extract", "schedule")
    history.end(history.begin(ran), ran.finish(0, ""))
    skipped = execution.start("caso-extract", "manual").skip("busy")
    history.end(history.begin(skipped), skipped)
    assert history.last("caso-extract").outcome == "skipped"
    assert history.last_attempt("caso-extract").started == ran.started


def test_outcome_comes_from_the_jobs_summary_line():
    record = execution.start("image-sync", "manual").finish(
        0, "downloading...\nimage-sync partial added=1 failed=1 duration=3.0s\n"
    )
    assert record.outcome == "partial"
    failed = execution.start("image-sync", "manual").finish(3, "boom\n\n")
    assert (failed.outcome, failed.reason) == ("failed", "exit status 3: boom")
    summarised = execution.start("image-sync", "manual").finish(
        1, "trace\nimage-sync failed error=FetchError duration=1.0s\n"
    )
    assert summarised.reason == "exit status 1"  # its summary line says the rest


def test_the_reason_is_the_jobs_own_sentence_or_its_last_words_cut_at_a_word():
    said = execution.start("image-sync", "schedule").finish(
        1, "image-sync failed applied=0 duration=2.0s -- list demo: Glance refused the upload\n"
    )
    assert (said.outcome, said.reason) == ("failed", "list demo: Glance refused the upload")
    crashed = execution.start("image-sync", "schedule").finish(
        1, "Traceback ...\nKeyError: " + "averyveryverylongword " * 30 + "\n"
    )
    assert crashed.reason.startswith("exit status 1: KeyError: averyveryverylongword")
    assert crashed.reason.endswith("averyveryverylongword…")  # never cut mid-word
