"""Faults of accounting: the endpoint, the host credentials, the APEL spool, cASO.

The sender runs against the AMS stand-in (demo/accounting-endpoint, the one
stand-in: the central accounting service cannot run here) started as a
process by the accounting tests' ``endpoint`` fixture; the host certificates
come from the tests' CA; cASO is the real ``caso-extract``.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest
from dirq.QueueSimple import QueueSimple

from fedcloud_accounting.extract import ExtractJob
from fedcloud_accounting.send import SendJob
from fedcloud_common.settings.accounting import ExtractSettings
from fedcloud_common.summary import parse_summary
from services.accounting.tests.apel_samples import cloud_message, fill, stored_vm_uuids, vm_uuids
from tests.faults.conftest import spool_files


def _summary(capsys) -> tuple[str, dict[str, str], str]:
    """(outcome, counts, reason) of the run's summary line, the last line on stdout."""
    line = capsys.readouterr().out.strip().splitlines()[-1]
    _, outcome, counts = parse_summary(line)
    return outcome, counts, line.partition(" -- ")[2]


def test_the_endpoint_down_keeps_every_message_and_the_run_fails_saying_so(
    endpoint, tmp_path, capsys
):
    spool = tmp_path / "spool"
    names = fill(spool, 4)
    before = spool_files(spool)
    endpoint.stop()
    began = time.monotonic()
    assert SendJob(endpoint.config(spool)).run() == 1
    assert time.monotonic() - began < 15
    outcome, counts, reason = _summary(capsys)
    assert (outcome, counts["sent"], counts["kept"]) == ("failed", "0", "4")
    assert reason and "\n" not in reason
    assert spool_files(spool) == before  # every message still there, none locked
    endpoint.start()
    assert SendJob(endpoint.config(spool)).run() == 0
    assert len(names) == 4
    assert stored_vm_uuids(endpoint) == sorted(vm_uuids(cloud_message(0, 12)))


def test_a_corrupt_apel_message_is_quarantined_the_rest_sent_and_it_stays_in_view(
    endpoint, tmp_path, capsys
):
    spool = tmp_path / "spool"
    fill(spool, 2)
    corrupt = QueueSimple(str(spool)).add(b"\xff\xfe not an APEL message")
    assert SendJob(endpoint.config(spool)).run() == 1
    outcome, counts, reason = _summary(capsys)
    assert (outcome, counts["sent"], counts["quarantined"]) == ("partial", "2", "1")
    assert reason.startswith(f"quarantined {corrupt} (not UTF-8")
    kept = tmp_path / "quarantine" / corrupt.replace("/", "-")
    assert kept.read_bytes() == b"\xff\xfe not an APEL message"  # kept as it was
    assert SendJob(endpoint.config(spool)).run() == 0  # a clean run ...
    outcome, counts, _ = _summary(capsys)
    assert (outcome, counts["in_quarantine"]) == ("ok", "1")  # ... keeps it in view
    assert stored_vm_uuids(endpoint) == sorted(vm_uuids(cloud_message(0, 6)))


@pytest.mark.parametrize(
    ("cert", "key", "problem"),
    [
        ("expired_cert", "expired_key", "expired"),
        ("host_cert", "other_key", "the key does not belong to the certificate"),
    ],
    ids=["expired-host-certificate", "key-of-another-certificate"],
)
def test_bad_host_credentials_send_nothing_keep_the_spool_and_say_what_to_renew(
    pki, endpoint, tmp_path, capsys, cert, key, problem
):
    spool = tmp_path / "spool"
    fill(spool, 3)
    before = spool_files(spool)
    config = endpoint.config(spool, cert=getattr(pki, cert), key=getattr(pki, key))
    assert SendJob(config).run() == 1
    outcome, counts, reason = _summary(capsys)
    assert (outcome, counts["kept"]) == ("failed", "3")
    assert problem in reason
    assert spool_files(spool) == before and endpoint.stored() == []


def test_a_signer_the_endpoint_does_not_trust_is_refused_and_the_messages_kept(
    pki, endpoint, tmp_path, capsys
):
    spool = tmp_path / "spool"
    fill(spool, 2)
    before = spool_files(spool)
    config = endpoint.config(spool, cert=pki.foreign_cert, key=pki.foreign_key)
    assert SendJob(config).run() == 1
    outcome, counts, reason = _summary(capsys)
    assert outcome == "failed" and counts["kept"] == "2" and reason
    assert spool_files(spool) == before and endpoint.stored() == []


def test_a_refused_ams_token_keeps_the_messages_and_the_run_fails_with_a_reason(
    endpoint, tmp_path, capsys
):
    endpoint.stop()
    endpoint.token = "the-right-token"
    endpoint.start()
    token = tmp_path / "ams-token"
    token.write_text("a-wrong-token\n")
    token.chmod(0o600)
    spool = tmp_path / "spool"
    fill(spool, 2)
    before = spool_files(spool)
    config = endpoint.config(spool, token_file=token, authx509_port=endpoint.port + 500)
    assert SendJob(config).run() == 1
    outcome, counts, reason = _summary(capsys)
    assert outcome == "failed" and counts["kept"] == "2" and reason
    assert spool_files(spool) == before and endpoint.stored() == []


def test_a_sender_that_died_holding_a_lock_loses_nothing_the_next_run_sends_it(
    endpoint, tmp_path, capsys
):
    spool = tmp_path / "spool"
    names = fill(spool, 2)
    queue = QueueSimple(str(spool))
    assert queue.lock(names[0])  # the dead run's lock
    hour_ago = time.time() - 3600
    os.utime(spool / f"{names[0]}.lck", (hour_ago, hour_ago))
    assert SendJob(endpoint.config(spool)).run() == 0
    outcome, counts, _ = _summary(capsys)
    assert (outcome, counts["sent"], counts["stale_locks"]) == ("ok", "2", "1")
    assert len(names) == 2
    assert stored_vm_uuids(endpoint) == sorted(vm_uuids(cloud_message(0, 6)))


def _extract_settings(tmp_path: Path, auth_url: str) -> ExtractSettings:
    password = tmp_path / "password"
    password.write_text("s3cret\n")
    password.chmod(0o600)
    caso = shutil.which("caso-extract", path=str(Path(sys.executable).parent))
    assert caso, "cASO (caso-extract) is installed with the workspace"
    return ExtractSettings.model_validate({
        "site_name": "FAULT-SITE",
        "openstack": {"auth_url": auth_url, "username": "acct", "password_file": password,
                      "project_name": "ops", "timeout_s": 5},
        "projects": ["ops"],
        "state_dir": tmp_path / "state",
        "spool_dir": tmp_path / "spool",
        "start_date": "2026-01-01",
        "caso_command": [caso],
        "run_timeout_s": 120,
    })  # fmt: skip


def test_caso_failing_on_an_unreachable_keystone_keeps_the_watermark_and_says_why(tmp_path, capsys):
    settings = _extract_settings(tmp_path, "http://127.0.0.1:1/v3")
    now = datetime.datetime(2026, 5, 1, 12, tzinfo=datetime.UTC)
    assert ExtractJob(settings, now=now).run() == 1
    outcome, counts, reason = _summary(capsys)
    assert outcome == "failed"
    assert reason and "\n" not in reason
    assert counts["watermark"].startswith("2026-01-01T00:00:00")  # where it was
    marks = json.loads((tmp_path / "state" / "fedcloud-watermark.json").read_text())
    assert marks["extracted_until"] == {"cloud": "2026-01-01T00:00:00+00:00"}  # not moved
    assert not QueueSimple(str(tmp_path / "spool")).count()  # no half window spooled
    for path in (tmp_path / "state").rglob("*"):
        assert path.is_dir() or b"s3cret" not in path.read_bytes(), f"password left in {path}"


def test_caso_failing_on_an_unreachable_keystone_says_the_cloud_cannot_be_reached(tmp_path, capsys):
    settings = _extract_settings(tmp_path, "http://127.0.0.1:1/v3")
    assert ExtractJob(settings).run() == 1
    _, _, reason = _summary(capsys)
    assert reason.startswith("cannot reach the cloud"), reason
