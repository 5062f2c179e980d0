import datetime
import json
import urllib.error
import urllib.request

from appliance.tests.status_scene import (
    BDII_REASON,
    GLANCE_ID,
    IMAGE,
    VERSION,
    build,
    ran,
    summary,
)
from fedcloud_appliance import status, web
from fedcloud_appliance.history import History
from fedcloud_appliance.jobspec import JobSpec
from fedcloud_appliance.page import as_html
from fedcloud_appliance.scheduler import Supervisor
from fedcloud_common.imagestatus import ListStatus, StatusFiles

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
    assert '<tr class="job" id="job-bdii-publish">' in page
    assert '<span class="badge failed">failed</span>' in page
    assert '<span class="badge ok">ok</span>' in page
    assert {j["job"] for j in data["jobs"]} == {"image-sync", "bdii-publish"}


def test_a_skipped_run_does_not_hide_the_last_real_outcome(tmp_path):
    sup = supervisor(tmp_path)
    with sup._exclusive("image-sync"):  # as if a scheduled run were in progress
        assert sup.run_job("image-sync", "catch-up").outcome == "skipped"
    last = {j["job"]: j for j in status.collect(sup, None)["jobs"]}["image-sync"]["last_run"]
    assert (last["outcome"], last["summary"]) == ("ok", "image-sync ok added=3 duration=9.0s")


def get(url: str) -> tuple[int, dict[str, str], str]:
    try:
        with urllib.request.urlopen(url) as reply:
            return reply.status, dict(reply.headers), reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def test_the_server_names_no_version_and_answers_unknown_paths_with_404(tmp_path):
    sup = supervisor(tmp_path)
    server = web.serve(0, lambda: status.collect(sup, None), host="127.0.0.1")
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        replies = {path: get(base + path) for path in ("/", "/status.json", "/nope", "/metrics")}
    finally:
        server.shutdown()
        server.server_close()
    for _, headers, _ in replies.values():
        assert headers["Server"] == "fedcloud-appliance", headers
    assert replies["/"][0] == 200 and replies["/status.json"][0] == 200
    assert "script-src" not in replies["/"][1]["Content-Security-Policy"]  # none: default-src
    assert replies["/nope"][0] == 404
    # No metrics given (the config is invalid): Prometheus sees the target down.
    assert replies["/metrics"][0] == 503


def test_a_failing_collect_answers_500_and_the_server_keeps_serving(tmp_path):
    calls = []

    def collect():
        calls.append(1)
        if len(calls) == 1:
            raise OSError("history unreadable")
        return status.collect(supervisor(tmp_path), None)

    server = web.serve(0, collect, host="127.0.0.1")
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        assert get(base + "/")[0] == 500
        assert get(base + "/")[0] == 200
    finally:
        server.shutdown()
        server.server_close()


def test_every_value_on_the_page_is_escaped(tmp_path):
    def run(spec, record):
        return record.finish(
            1, "image-sync failed duration=1.0s -- <script>alert(1)</script> & co\n"
        )

    sup = Supervisor(SPECS[:1], run, History(tmp_path / "h.sqlite"), tmp_path / "locks")
    sup.run_job("image-sync")
    files = StatusFiles(tmp_path / "spool")
    files.record_lists({"<b>list</b>": ListStatus(state="error", reason="<i>bad</i>", checked="x")})
    appliance = status.Appliance(site="<site>", host="h&h", image_state_dir=tmp_path / "spool")
    page = as_html(status.collect(sup, None, appliance=appliance))
    assert "<script>" not in page and "<b>list</b>" not in page and "<i>bad</i>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in page
    assert "&lt;site&gt;" in page and "h&amp;h" in page


def test_status_carries_images_figures_and_what_needs_attention(tmp_path):
    scene = build(tmp_path)
    report = scene.collect()
    assert report["appliance"]["site"] == "FEDCLOUD-DEMO"
    assert report["appliance"]["host"] == "cloud.example.org"
    jobs = {j["job"]: j for j in report["jobs"]}
    assert len(jobs["bdii-publish"]["history"]) == 20
    assert [r["outcome"] for r in jobs["bdii-publish"]["history"][-2:]] == ["ok", "failed"]
    assert jobs["bdii-publish"]["last_run"]["reason"] == BDII_REASON
    assert jobs["caso-extract"]["last_run"]["fields"]["records"] == "421"
    assert 180 <= jobs["image-sync"]["running_for_s"] < 240
    # Figures from the newest run that reported them: the failed publish did not.
    assert report["figures"]["bdii_entries"]["value"] == 1234
    assert report["figures"]["messages_kept"]["value"] == 0
    assert report["figures"]["messages_in_quarantine"]["value"] is None
    lists = {lst["list"]: lst for lst in report["images"]["lists"]}
    assert list(lists) == ["egi-basic", "vo-demo", "fresh-list"]  # as subscribed
    assert lists["fresh-list"]["state"] == "never synced"
    assert lists["egi-basic"]["counts"] == {"ok": 1, "error": 1}
    (image,) = [i for i in lists["egi-basic"]["images"] if i["image"] == IMAGE]
    assert (image["glance_id"], image["version"], image["state"]) == (GLANCE_ID, VERSION, "ok")
    assert report["attention"] == [
        f"bdii-publish failed: {BDII_REASON}",
        "service site-bdii is running (unhealthy)",
        "image list egi-basic: 1 image(s) in error",
        "image list vo-demo: signature not trusted: the signer is not /DC=EU/DC=EGI/CN=endorser",
    ]
    text = status.as_text(report)
    assert "list egi-basic: ok: verified, 2 images" in text
    assert f"{IMAGE}: ok {VERSION} {GLANCE_ID}: added" in text
    assert text.rstrip().endswith(
        "signature not trusted: the signer is not /DC=EU/DC=EGI/CN=endorser"
    )


def test_quarantined_messages_need_attention_until_the_quarantine_is_empty(tmp_path):
    scene = build(tmp_path)
    history, now = scene.supervisor.history, datetime.datetime.now(datetime.UTC)
    minute = datetime.timedelta(minutes=1)

    def send(at: datetime.datetime, outcome: str, **counts: int) -> list[str]:
        ran(history, "apel-send", at, 1.0, summary("apel-send", outcome, 1.0, **counts))
        return scene.collect()["attention"]

    quarantined = "apel-send quarantined 1 APEL message(s): see apel-send's quarantine directory"
    assert quarantined in send(now, "ok", sent=0, quarantined=1)
    # Once the send reports what waits in quarantine, that is what counts.
    waiting = "1 APEL message(s) in quarantine: see apel-send's quarantine directory"
    assert waiting in send(now + minute, "ok", quarantined=0, in_quarantine=1)
    emptied = send(now + 2 * minute, "ok", quarantined=0, in_quarantine=0)
    assert not [item for item in emptied if "quarantine" in item]


def test_without_status_files_the_images_were_never_synced(tmp_path):
    report = status.collect(
        supervisor(tmp_path), None, appliance=status.Appliance(image_state_dir=tmp_path / "none")
    )
    assert report["images"]["never_synced"] is True and report["images"]["lists"] == []
    assert "image lists: never synced" in status.as_text(report)
    # Image replication not enabled: nothing to say about images.
    assert status.collect(supervisor(tmp_path / "2"), None)["images"] is None


def test_appliance_status_reads_the_image_status_where_cloudkeeper_was_rendered_to_write_it(
    tmp_path, capsys, monkeypatch
):
    from fedcloud_appliance import cli
    from fedcloud_common import settings
    from fedcloud_common.settings.cloudkeeper import CloudkeeperSettings

    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "password").write_text("pw")
    (tmp_path / "secrets" / "password").chmod(0o600)
    config = tmp_path / "appliance.yaml"
    config.write_text(
        "site: {name: STATUS-SITE, hostname: cloud.status.test}\n"
        "openstack: {auth_url: 'https://k.test/v3', username: u, "
        f"password_file: {tmp_path}/secrets/password, project_name: p}}\n"
        f"supervisor: {{state_dir: {tmp_path}/state}}\n"
        "images:\n  endorser: {dn: /CN=endorser, ca: /CN=ca}\n"
        "  lists: [{name: egi-basic, url: 'https://lists.test/egi', project: p},\n"
        "          {name: later, url: 'https://lists.test/later', project: p}]\n"
    )
    state_dir = tmp_path / "spool" / "state"  # not the default: read from the rendered file
    settings.write(
        CloudkeeperSettings(state_dir=state_dir), tmp_path / "rendered" / "cloudkeeper.json"
    )
    StatusFiles(state_dir).record_lists(
        {"egi-basic": ListStatus(state="ok", reason="verified", checked="2024-05-01T10:00:00Z")}
    )
    monkeypatch.setenv("FEDCLOUD_RENDER_DIR", str(tmp_path / "rendered"))
    monkeypatch.setattr(cli, "_docker", lambda: None)

    assert cli.main(["--config", str(config), "status", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["appliance"]["site"] == "STATUS-SITE"
    assert report["appliance"]["host"] == "cloud.status.test"
    assert report["images"]["state_dir"] == str(state_dir)
    assert [(lst["list"], lst["state"]) for lst in report["images"]["lists"]] == [
        ("egi-basic", "ok"),
        ("later", "never synced"),
    ]
