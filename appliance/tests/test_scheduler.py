import datetime
import threading

from fedcloud_appliance.history import History
from fedcloud_appliance.jobspec import JobSpec
from fedcloud_appliance.scheduler import Supervisor

HOURLY = JobSpec("caso-extract", "img", ("x",), "0 * * * *", datetime.timedelta(minutes=5))
FOUR_HOURLY = JobSpec("image-sync", "img", ("x",), "0 */4 * * *", datetime.timedelta(hours=1))


def supervisor(tmp_path, run, specs=(HOURLY,)):
    return Supervisor(list(specs), run, History(tmp_path / "h.sqlite"), tmp_path / "locks")


def ok(spec, record):
    return record.finish(0, f"{spec.name} ok duration=0.0s\n")


def test_a_second_run_while_one_is_in_progress_is_skipped(tmp_path):
    entered, release = threading.Event(), threading.Event()

    def slow(spec, record):
        entered.set()
        release.wait(10)
        return ok(spec, record)

    sup = supervisor(tmp_path, slow)
    first = threading.Thread(target=sup.run_job, args=("caso-extract", "schedule"))
    first.start()
    assert entered.wait(10)
    second = sup.run_job("caso-extract", "manual")
    release.set()
    first.join()
    assert second.outcome == "skipped"
    assert sorted(r.outcome for r in sup.history.recent("caso-extract")) == ["ok", "skipped"]
    assert sup.history.last_attempt("caso-extract").outcome == "ok"


def test_a_crashing_runner_is_recorded_not_raised(tmp_path):
    def broken(spec, record):
        raise RuntimeError("engine went away")

    record = supervisor(tmp_path, broken).run_job("caso-extract")
    assert record.outcome == "failed"
    assert "engine went away" in record.reason


def test_jobs_never_run_are_due_at_start(tmp_path):
    sup = supervisor(tmp_path, ok, specs=(HOURLY, FOUR_HOURLY))
    assert sup.missed(datetime.datetime.now(datetime.UTC)) == ["caso-extract", "image-sync"]


def test_a_job_is_caught_up_only_when_a_scheduled_time_passed_since_its_last_run(tmp_path):
    sup = supervisor(tmp_path, ok, specs=(HOURLY, FOUR_HOURLY))
    for spec in (HOURLY, FOUR_HOURLY):
        sup.run_job(spec.name)
    last = sup.history.last("image-sync").started
    assert sup.missed(last) == []
    after_four_hours = last + datetime.timedelta(hours=4, minutes=1)
    assert sup.missed(after_four_hours) == ["caso-extract", "image-sync"]
    after_one_hour = last + datetime.timedelta(hours=1, minutes=1)
    assert "caso-extract" in sup.missed(after_one_hour)


def test_start_catches_up_missed_jobs_once(tmp_path):
    runs = []
    done = threading.Event()

    def counting(spec, record):
        runs.append((spec.name, record.trigger))
        done.set()
        return ok(spec, record)

    sup = supervisor(tmp_path, counting)
    sup.start()
    try:
        assert done.wait(10)
    finally:
        sup.stop()
    assert runs == [("caso-extract", "catch-up")]
    assert sup.next_runs()["caso-extract"].minute == 0


def test_catch_up_runs_a_job_after_the_one_it_feeds(tmp_path):
    sync = FOUR_HOURLY
    publish = JobSpec("bdii-publish", "img", ("x",), "*/30 * * * *", sync.timeout, after=sync.name)
    send = JobSpec("apel-send", "img", ("x",), "0 */6 * * *", HOURLY.timeout, after=HOURLY.name)
    sup = supervisor(tmp_path, ok, specs=(send, publish, HOURLY, sync))
    assert sup.catch_up_chains(["apel-send", "bdii-publish", "caso-extract", "image-sync"]) == [
        ["caso-extract", "apel-send"],
        ["image-sync", "bdii-publish"],
    ]
    # A follower whose predecessor is not due runs on its own.
    assert sup.catch_up_chains(["apel-send"]) == [["apel-send"]]


def test_caught_up_followers_start_only_when_their_predecessor_ended(tmp_path):
    events = []
    done = threading.Event()
    send = JobSpec("apel-send", "img", ("x",), "0 */6 * * *", HOURLY.timeout, after=HOURLY.name)

    def recording(spec, record):
        events.append(f"start {spec.name}")
        events.append(f"end {spec.name}")
        if spec.name == "apel-send":
            done.set()
        return ok(spec, record)

    sup = supervisor(tmp_path, recording, specs=(send, HOURLY))
    sup.start()
    try:
        assert done.wait(10)
    finally:
        sup.stop()
    assert events == ["start caso-extract", "end caso-extract", "start apel-send", "end apel-send"]


def failing(spec, record):
    return record.finish(1, f"{spec.name} failed duration=0.0s -- Keystone unreachable\n")


YEARLY = JobSpec("image-sync", "img", ("x",), "0 0 1 1 *", datetime.timedelta(hours=1))


def test_a_failed_scheduled_run_is_retried_with_backoff_before_its_next_run(tmp_path):
    from fedcloud_appliance.scheduler import RetryPolicy

    # Its next scheduled run is far away, whatever the time now.
    sup = Supervisor([YEARLY], failing, History(tmp_path / "h.sqlite"), tmp_path / "locks",
                     retry=RetryPolicy(2, datetime.timedelta(minutes=5)))  # fmt: skip
    sup.start(catch_up=False)
    try:
        before = datetime.datetime.now(datetime.UTC)
        sup.run_job("image-sync", "schedule")
        first = sup.retries["image-sync"]
        assert (first.attempt, first.of) == (1, 2)
        assert datetime.timedelta(minutes=4) < first.at - before <= datetime.timedelta(minutes=6)
        assert sup.scheduler.get_job("image-sync-retry").next_run_time == first.at
        sup.run_job("image-sync", "retry")  # the retry fails too: twice as long
        second = sup.retries["image-sync"]
        assert second.attempt == 2
        assert datetime.timedelta(minutes=9) < second.at - before <= datetime.timedelta(minutes=11)
        sup.run_job("image-sync", "retry")  # bounded: no third retry
        assert "image-sync" not in sup.retries
    finally:
        sup.stop()


def test_manual_runs_and_successes_plan_no_retry(tmp_path):
    sup = supervisor(tmp_path, failing, specs=(YEARLY,))
    sup.start(catch_up=False)
    try:
        sup.run_job("image-sync", "manual")
        assert sup.retries == {}
        sup._run = ok
        sup.run_job("image-sync", "schedule")
        assert sup.retries == {} and sup.scheduler.get_job("image-sync-retry") is None
    finally:
        sup.stop()


def test_a_retry_never_goes_past_the_next_scheduled_run(tmp_path):
    from fedcloud_appliance.scheduler import RetryPolicy

    every_minute = JobSpec("bdii-publish", "img", ("x",), "* * * * *", datetime.timedelta(1))
    sup = Supervisor([every_minute], failing, History(tmp_path / "h.sqlite"), tmp_path / "locks",
                     retry=RetryPolicy(3, datetime.timedelta(minutes=5)))  # fmt: skip
    sup.start(catch_up=False)
    try:
        sup.run_job("bdii-publish", "schedule")
        assert sup.retries == {}
    finally:
        sup.stop()


def test_a_restarted_supervisor_records_the_real_outcome_of_the_run_it_left(tmp_path):
    from fedcloud_appliance import execution

    history = History(tmp_path / "h.sqlite")
    left = execution.start("image-sync", "schedule")
    row = history.begin(left)
    gone = execution.start("caso-extract", "schedule")
    history.begin(gone)
    followed_with_lock_held = []

    def reattach(spec, record):
        # While it follows the old run, no new run of that job may start.
        followed_with_lock_held.append(sup.run_job(spec.name, "manual").outcome)
        if record.job == "image-sync":
            return record.finish(0, "image-sync ok applied=1 duration=9.0s\n")
        return None  # its container is gone

    sup = Supervisor([FOUR_HOURLY, HOURLY], ok, history, tmp_path / "locks", reattach=reattach)
    for thread in sup.recover():
        thread.join(10)
    assert followed_with_lock_held == ["skipped", "skipped"]
    runs = {r.job: r for job in ("image-sync", "caso-extract") for r in history.recent(job, 5)
            if r.outcome != "skipped"}  # fmt: skip
    assert (runs["image-sync"].outcome, runs["image-sync"].summary) == (
        "ok", "image-sync ok applied=1 duration=9.0s")  # fmt: skip
    assert runs["caso-extract"].outcome == "failed"
    assert "its container is gone" in runs["caso-extract"].reason
    assert history.running() == [] and row
