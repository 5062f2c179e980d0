"""cASO against the demo cloud: the records, the watermark, the whole chain.

Runs the real caso-extract (from the lock) against real Keystone and
nova-api, and, for the failure case, freezes nova-api inside the demo cloud
container (SIGSTOP) so cASO's requests time out the way they do when Nova
hangs or is down.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import json
import sys
from pathlib import Path

import docker
import pytest
from dirq.QueueSimple import QueueSimple

from fedcloud_accounting.extract import ExtractJob
from fedcloud_accounting.send import SendJob
from fedcloud_common.settings.accounting import ExtractSettings
from fedcloud_common.summary import parse_summary

pytestmark = pytest.mark.e2e

CASO = str(Path(sys.executable).parent / "caso-extract")


def _config(demo_cloud, tmp_path: Path, **overrides: object) -> ExtractSettings:
    password = tmp_path / "keystone-password"
    password.write_text("accountingpass\n")
    password.chmod(0o600)
    values: dict[str, object] = {
        "site_name": "DEMO-SITE",
        "openstack": {
            "auth_url": demo_cloud.auth_url,
            # the least-privilege account: reader on the VO projects + system reader
            "username": "accounting",
            "password_file": password,
            "project_name": "fedcloud-ops",  # not passed on: cASO scopes each token itself
            "timeout_s": 5,
        },
        "project_tag": demo_cloud.seed.ACCOUNTED_TAG,
        "vo_property": demo_cloud.seed.VO_PROPERTY,
        "spool_dir": tmp_path / "apel" / "outgoing" / "openstack",
        "state_dir": tmp_path / "caso",
        "start_date": "2026-01-01",
        "caso_command": [CASO],
    }
    values.update(overrides)
    return ExtractSettings.model_validate(values)


def _records(spool: Path) -> dict[str, dict[str, str]]:
    """Every cloud record in the spool, by VMUUID (the latest wins, as in APEL)."""
    queue = QueueSimple(str(spool))
    found: dict[str, dict[str, str]] = {}
    for path in sorted(spool.glob("*/*"), key=lambda p: p.stat().st_mtime):
        if path.name.endswith((".lck", ".tmp")):
            continue
        text = path.read_text()
        assert text.startswith("APEL-cloud-message: v0.4\n")
        for chunk in text.split("\n", 1)[1].split("\n%%\n"):
            record = dict(line.split(": ", 1) for line in chunk.splitlines())
            found[record["VMUUID"]] = record
    assert queue.count() >= 1
    return found


def _summary(out: str) -> dict[str, str]:
    line = [ln for ln in out.splitlines() if ln.startswith("caso-extract ")][-1]
    parsed = parse_summary(line)
    assert parsed is not None, line
    return {"outcome": parsed[1], **parsed[2]}


def test_records_for_the_seeded_servers_carry_site_vo_cpus_memory_and_wall_time(
    demo_cloud, tmp_path, capsys
):
    config = _config(demo_cloud, tmp_path)
    assert ExtractJob(config).run() == 0
    summary = _summary(capsys.readouterr().out)
    assert summary["outcome"] == "ok"
    window_to = datetime.datetime.fromisoformat(summary["window_to"])
    records = _records(config.spool_dir)
    seed = demo_cloud.seed
    vos = {p.name: p.vo for p in seed.PROJECTS}
    flavors = {f.name: f for f in seed.FLAVORS}
    accounted = [s for s in seed.SERVERS if vos[s.project]]
    assert set(records) == {seed.fixed_id("server", s.name) for s in accounted}
    for server in accounted:
        record = records[seed.fixed_id("server", server.name)]
        flavor = flavors[server.flavor]
        assert record["SiteName"] == "DEMO-SITE"
        # the owner's real name, whatever Keystone domain it is in (cASO #108)
        assert record["GlobalUserName"] == server.user
        assert record["MachineName"] == server.name
        assert record["FQAN"] == vos[server.project]
        assert int(record["CpuCount"]) == flavor.vcpus
        assert int(record["Memory"]) == flavor.ram
        assert int(record["StartTime"]) == int(server.launched_at.timestamp())
        if server.terminated_at is not None:
            assert record["Status"] == "completed"
            assert int(record["EndTime"]) == int(server.terminated_at.timestamp())
            expected = (server.terminated_at - server.launched_at).total_seconds()
            assert int(record["WallDuration"]) == expected
        else:
            assert record["Status"] == "started"
            expected = (window_to - server.launched_at).total_seconds()
            assert abs(int(record["WallDuration"]) - expected) <= 120
    watermark = json.loads((config.state_dir / "fedcloud-watermark.json").read_text())
    assert watermark["extracted_until"] == {"cloud": summary["window_to"]}


def test_explicit_projects_are_the_only_ones_accounted(demo_cloud, tmp_path, capsys):
    seed = demo_cloud.seed
    admin = demo_cloud.connect("fedcloud-demo-admin")
    vo_demo = admin.identity.find_project("vo-demo", ignore_missing=False).id
    config = _config(demo_cloud, tmp_path, project_tag=None, projects=[vo_demo])
    assert ExtractJob(config).run() == 0
    assert _summary(capsys.readouterr().out)["projects"] == "1"
    expected = {seed.fixed_id("server", s.name) for s in seed.SERVERS if s.project == "vo-demo"}
    assert expected
    assert set(_records(config.spool_dir)) == expected


def test_an_extractor_the_cloud_lacks_fails_its_type_only_and_the_others_move_on(
    demo_cloud, tmp_path, capsys
):
    # the demo cloud has no Cinder: cASO's cinder extractor finds no volume endpoint
    config = _config(demo_cloud, tmp_path, record_types=["cloud", "storage"])
    assert ExtractJob(config).run() == 1
    captured = capsys.readouterr()
    summary = _summary(captured.out)
    assert summary["outcome"] == "partial"
    assert (summary["types_ok"], summary["types_failed"]) == ("cloud", "storage")
    assert "Extractor cinder: cannot extract records" in captured.err
    assert "Extractor nova" not in captured.err
    marks = json.loads((config.state_dir / "fedcloud-watermark.json").read_text())
    assert marks["extracted_until"] == {  # storage: not moved
        "cloud": summary["window_to"],
        "storage": "2026-01-01T00:00:00+00:00",
    }
    # the next run extracts storage's whole window again, cloud's from the last run
    assert ExtractJob(config).run() == 1
    again = _summary(capsys.readouterr().out)
    assert again["window_from"] == "2026-01-01T00:00:00+00:00"  # storage's, the earliest
    assert json.loads((config.state_dir / "fedcloud-watermark.json").read_text())[
        "extracted_until"
    ] == {"cloud": again["window_to"], "storage": "2026-01-01T00:00:00+00:00"}


@contextlib.contextmanager
def _nova_frozen(demo_cloud):
    """nova-api's processes stopped (SIGSTOP) for the duration, then resumed."""
    client = docker.from_env()
    (container,) = client.containers.list(
        filters={
            "label": [
                f"com.docker.compose.project={demo_cloud.project}",
                "com.docker.compose.service=democloud",
            ]
        }
    )
    find = (
        "for p in /proc/[0-9]*; do "
        'grep -q uwsgi-nov[a] "$p/cmdline" 2>/dev/null && echo "${p#/proc/}"; done'
    )
    pids = container.exec_run(["sh", "-c", find]).output.decode().split()
    assert pids, "nova-api not found in the demo cloud container"
    assert container.exec_run(["sh", "-c", f"kill -STOP {' '.join(pids)}"]).exit_code == 0
    try:
        yield
    finally:
        container.exec_run(["sh", "-c", f"kill -CONT {' '.join(pids)}"])


def test_a_window_in_which_nova_failed_is_extracted_again_and_nothing_is_lost(
    demo_cloud, tmp_path, capsys
):
    # start inside demo-gpu-train's life; it and fedcloud-batch end in this window
    config = _config(demo_cloud, tmp_path, start_date="2026-03-02")
    watermark = config.state_dir / "fedcloud-watermark.json"
    with _nova_frozen(demo_cloud):
        assert ExtractJob(config).run() == 1
    captured = capsys.readouterr()
    failed = _summary(captured.out)
    assert failed["outcome"] == "failed"
    assert "Extractor nova: cannot extract records" in captured.err
    first = {"cloud": "2026-03-02T00:00:00+00:00"}
    assert json.loads(watermark.read_text())["extracted_until"] == first  # not moved
    # what cASO alone would have done: its own lastrun moved past the window
    assert list((config.state_dir / "caso").glob("lastrun.*"))

    assert ExtractJob(config).run() == 0
    retried = _summary(capsys.readouterr().out)
    assert retried["outcome"] == "ok"
    assert retried["window_from"] == "2026-03-02T00:00:00+00:00"
    records = _records(config.spool_dir)
    seed = demo_cloud.seed
    for ended in ("demo-gpu-train", "fedcloud-batch"):
        record = records[seed.fixed_id("server", ended)]
        assert record["Status"] == "completed"
    assert json.loads(watermark.read_text())["extracted_until"] == {"cloud": retried["window_to"]}

    # and the window after it starts where the good run ended
    assert ExtractJob(config).run() == 0
    assert _summary(capsys.readouterr().out)["window_from"] == retried["window_to"]


def test_records_go_from_the_demo_cloud_to_the_endpoint_signed(demo_cloud, endpoint, tmp_path):
    config = _config(demo_cloud, tmp_path)
    assert ExtractJob(config).run() == 0
    extracted = _records(config.spool_dir)
    assert SendJob(endpoint.config(config.spool_dir)).run() == 0
    received = {}
    for message in endpoint.stored():
        assert message["signer"].endswith("CN=accounting.appliance.test")
        for chunk in message["body"].split("\n", 1)[1].split("\n%%\n"):
            record = dict(line.split(": ", 1) for line in chunk.splitlines())
            received[record["VMUUID"]] = record
    assert received == extracted
    assert QueueSimple(str(config.spool_dir)).count() == 0


def test_the_accounting_user_holds_reader_roles_only(demo_cloud):
    admin = demo_cloud.connect("fedcloud-demo-admin")
    user = admin.identity.find_user("accounting", ignore_missing=False)
    roles = {r.id: r.name for r in admin.identity.roles()}
    held = {
        (roles[a.role["id"]], "system" if "system" in a.scope else "project")
        for a in admin.identity.role_assignments(user_id=user.id)
    }
    assert held == {("reader", "project"), ("reader", "system")}


def test_without_the_system_reader_role_the_run_fails_saying_so(demo_cloud, tmp_path, capsys):
    config = _config(demo_cloud, tmp_path)
    openstack = config.openstack.model_copy(update={"username": "accounting-noreader"})
    config = config.model_copy(update={"openstack": openstack})
    assert ExtractJob(config).run() == 1
    out = capsys.readouterr().out
    summary = _summary(out)
    assert summary["outcome"] == "failed", out
    assert summary["types_failed"] == "cloud"


def test_cloud_and_accelerator_records_reach_the_endpoint_with_real_values(
    demo_cloud, endpoint, tmp_path, capsys
):
    from fedcloud_accounting import messages

    seed = demo_cloud.seed
    config = _config(
        demo_cloud, tmp_path, record_types=["cloud", "accelerator"], start_date="2026-02-20"
    )
    assert ExtractJob(config).run() == 0
    assert _summary(capsys.readouterr().out)["types_ok"] == "cloud,accelerator"
    assert SendJob(endpoint.config(config.spool_dir)).run() == 0
    by_kind: dict[str, list[bytes]] = {}
    for stored in endpoint.stored():
        parsed = messages.parse(stored["body"].encode())
        by_kind.setdefault(parsed.form.kind, []).extend(parsed.records)
    gpu = next(s for s in seed.SERVERS if s.name == "demo-gpu-train")
    (accelerator,) = [json.loads(r) for r in by_kind["accelerator"]]
    assert accelerator["SiteName"] == "DEMO-SITE"
    assert accelerator["FQAN"] == "vo.demo.example"
    assert accelerator["AssociatedRecord"] == seed.fixed_id("server", gpu.name)
    assert accelerator["GlobalUserName"] == gpu.user
    assert (accelerator["Type"], accelerator["Model"], accelerator["Count"]) == (
        "GPU",
        "NVIDIA A100",
        1,
    )
    assert (accelerator["MeasurementMonth"], accelerator["MeasurementYear"]) == (3, 2026)
    assert accelerator["AvailableDuration"] == (gpu.terminated_at - gpu.launched_at).total_seconds()
    cloud = {}
    for record in by_kind["cloud"]:
        fields = dict(line.split(": ", 1) for line in record.decode().splitlines())
        cloud[fields["MachineName"]] = fields
    carol = cloud["federated-notebook"]  # a user of the other Keystone domain
    assert (carol["GlobalUserName"], carol["FQAN"]) == ("carol", "fedcloud.egi.eu")
    assert carol["SiteName"] == "DEMO-SITE"


def test_public_ip_records_reach_the_endpoint_per_project_and_ip_version(
    demo_cloud, endpoint, tmp_path, capsys
):
    from fedcloud_accounting import messages

    seed = demo_cloud.seed
    config = _config(demo_cloud, tmp_path, record_types=["ip"])
    code = ExtractJob(config).run()
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert _summary(captured.out)["types_ok"] == "ip"
    assert SendJob(endpoint.config(config.spool_dir)).run() == 0
    found = collections.Counter()
    for stored in endpoint.stored():
        parsed = messages.parse(stored["body"].encode())
        assert parsed.form.kind == "ip"
        for record in parsed.records:
            fields = json.loads(record)
            assert fields["SiteName"] == "DEMO-SITE"
            found[fields["FQAN"], fields["IPVersion"]] += fields["IPCount"]
    vos = {p.name: p.vo for p in seed.PROJECTS}
    counted = collections.Counter(
        (f.project, 6 if ":" in f.address else 4) for f in seed.FLOATING_IPS
    )
    # cASO 5.2.2 keeps one IP record per project (keyed by user, always None
    # for IPs): with both versions in a project the IPv6 record replaces the
    # IPv4 one. What arrives is what cASO wrote, no more, no less.
    expected = collections.Counter()
    for project in {p for p, _ in counted}:
        version = 6 if counted[project, 6] else 4
        expected[vos[project], version] = counted[project, version]
    assert found == expected
    assert ("fedcloud.egi.eu", 4) not in found  # the cASO loss, seen here first
