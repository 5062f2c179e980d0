"""The sender against the AMS stand-in: real TLS, real signatures, real spool."""

from __future__ import annotations

import datetime
import os
import subprocess
import time
from pathlib import Path

import pytest
from dirq.QueueSimple import QueueSimple

from fedcloud_accounting import messages, smime
from fedcloud_accounting.send import SendJob, problem_with
from fedcloud_accounting.transports.noop import NoopTransport
from services.accounting.tests.apel_samples import (
    caso_records,
    caso_spool,
    cloud_message,
    fill,
    stored_vm_uuids,
    vm_uuids,
)

received = stored_vm_uuids


def _body(signed: bytes) -> str:
    """The APEL text inside a message signed with ``-text`` (test-side reading)."""
    text = signed.replace(b"\r\n", b"\n").decode()
    return text.split("Content-Type: text/plain\n\n", 1)[1]


def _spool_files(spool: Path) -> dict[str, bytes]:
    return {str(p.relative_to(spool)): p.read_bytes() for p in spool.rglob("*") if p.is_file()}


def test_every_message_arrives_signed_by_the_host_and_leaves_the_spool(endpoint, tmp_path, capsys):
    spool = tmp_path / "spool"
    fill(spool, 5)
    code = SendJob(endpoint.config(spool)).run()
    captured = capsys.readouterr()
    out = captured.out.strip().splitlines()[-1]
    assert code == 0, captured.err
    assert out.startswith("apel-send ok sent=5 kept=0 quarantined=0")
    assert "messages=1 records=15" in out  # five small spool messages packed into one
    stored = endpoint.stored()
    assert len(stored) == 1
    assert {s["signer"] for s in stored} == {
        "/DC=org/DC=test/O=Appliance/CN=accounting.appliance.test"
    }
    assert set().union(*(vm_uuids(s["body"]) for s in stored)) == vm_uuids(cloud_message(0, 15))
    assert QueueSimple(str(spool)).count() == 0


def test_messages_are_published_to_the_configured_project_and_topic(endpoint, tmp_path):
    spool = tmp_path / "spool"
    fill(spool, 1)
    assert SendJob(endpoint.config(spool)).run() == 0
    fill(spool, 1)
    config = endpoint.config(spool, ams_project="site-tests", destination="cloud-test-records")
    assert SendJob(config).run() == 0
    assert [s["topic"] for s in endpoint.stored()] == [
        "accounting/eu-egi-cloud-accounting",
        "site-tests/cloud-test-records",
    ]


def test_signature_is_what_openssl_smime_verifies(pki, tmp_path):
    body = cloud_message(0, 2).encode()
    signer = smime.load_signer(pki.host_cert, pki.host_key, datetime.timedelta(hours=24))
    signed = tmp_path / "signed.eml"
    signed.write_bytes(signer.sign(body))
    done = subprocess.run(
        ["openssl", "smime", "-verify", "-CAfile", str(pki.ca), "-in", str(signed), "-text"],
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.replace(b"\r\n", b"\n").strip() == body.strip()
    assert b"Verification successful" in done.stderr


def test_encrypted_messages_decrypt_with_openssl_and_reach_a_decrypting_endpoint(
    pki, endpoint, tmp_path
):
    body = cloud_message(0, 1).encode()
    signer = smime.load_signer(pki.host_cert, pki.host_key, datetime.timedelta(hours=1))
    sealed = tmp_path / "sealed.eml"
    sealed.write_bytes(smime.encrypt(signer.sign(body), smime.load_cert(pki.server_cert)))
    done = subprocess.run(
        [
            "openssl",
            "smime",
            "-decrypt",
            "-in",
            str(sealed),
            "-recip",
            str(pki.server_cert),
            "-inkey",
            str(pki.server_key),
        ],
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert b"multipart/signed" in done.stdout
    # the endpoint without the server key refuses; with it, accepts
    spool = tmp_path / "spool"
    fill(spool, 2)
    config = endpoint.config(spool, server_cert=pki.server_cert)
    assert SendJob(config).run() == 1
    assert QueueSimple(str(spool)).count() == 2
    assert "encrypted message but no server key" in endpoint.rejected()[0]["error"]
    endpoint.stop()
    endpoint.decrypt = True
    endpoint.start()
    assert SendJob(config).run() == 0
    assert received(endpoint) == sorted(vm_uuids(cloud_message(0, 6)))


def test_endpoint_down_keeps_everything_and_the_next_run_delivers(endpoint, tmp_path, capsys):
    spool = tmp_path / "spool"
    names = fill(spool, 4)
    endpoint.stop()
    began = time.monotonic()
    assert SendJob(endpoint.config(spool)).run() == 1
    assert time.monotonic() - began < 15, "a dead endpoint must not stall the run"
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("apel-send failed sent=0 kept=4"), summary
    assert QueueSimple(str(spool)).count() == 4
    assert not list(spool.glob("*/*.lck")), "nothing may stay locked"
    endpoint.start()
    assert SendJob(endpoint.config(spool)).run() == 0
    assert len(names) == 4
    assert received(endpoint) == sorted(vm_uuids(cloud_message(0, 12)))


def test_endpoint_dying_mid_run_keeps_the_unsent_rest(endpoint, tmp_path, capsys):
    spool = tmp_path / "spool"
    fill(spool, 6, records_per_message=20)

    class DiesAfterOne(NoopTransport):
        max_batch = 1

        def send(self, batch):
            if self.sent:
                from fedcloud_accounting.errors import EndpointDownError

                raise EndpointDownError(target="test", reason="connection reset")
            super().send(batch)

    # a limit that holds about one spool message per APEL message
    config = endpoint.config(spool, max_message_bytes=20_000)
    dying = DiesAfterOne(config)
    assert SendJob(config, transport=dying).run() == 1
    out = capsys.readouterr().out
    # one message went: two spool messages whole, a third in part (rewritten to its rest)
    assert "apel-send partial sent=2 kept=4" in out and "messages=1 " in out, out
    assert SendJob(config).run() == 0
    first = [u for m in dying.sent for u in vm_uuids(_body(m.payload))]
    # every record once: the first run's message, then the rest, nothing twice
    assert sorted(first + received(endpoint)) == sorted(vm_uuids(cloud_message(0, 120)))


@pytest.mark.parametrize(
    ("cert", "key", "problem"),
    [
        ("host_cert", "other_key", "the key does not belong to the certificate"),
        ("expired_cert", "expired_key", "expired"),
    ],
)
def test_bad_host_credentials_fail_clearly_and_leave_the_spool_untouched(
    pki, endpoint, tmp_path, capsys, cert, key, problem
):
    spool = tmp_path / "spool"
    fill(spool, 3)
    before = _spool_files(spool)
    config = endpoint.config(spool, cert=getattr(pki, cert), key=getattr(pki, key))
    assert SendJob(config).run() == 1
    captured = capsys.readouterr()
    assert problem in captured.err
    assert "renew" in captured.err or "matching pair" in captured.err
    assert captured.out.strip().startswith("apel-send failed sent=0 kept=3")
    assert _spool_files(spool) == before
    assert endpoint.stored() == []


def test_certificate_about_to_expire_is_refused(pki, tmp_path):
    spool = tmp_path / "spool"
    fill(spool, 1)
    from fedcloud_accounting.errors import CertificateError

    with pytest.raises(CertificateError, match="expires"):
        smime.load_signer(pki.host_cert, pki.host_key, datetime.timedelta(days=365))


def test_corrupt_message_is_quarantined_and_the_others_sent(endpoint, tmp_path, capsys):
    spool = tmp_path / "spool"
    fill(spool, 2)
    queue = QueueSimple(str(spool))
    corrupt = queue.add(b"\xff\xfe not an APEL message")
    fill(spool, 2)
    assert SendJob(endpoint.config(spool)).run() == 1
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("apel-send partial sent=4 kept=0 quarantined=1"), summary
    quarantined = tmp_path / "quarantine" / corrupt.replace("/", "-")
    assert quarantined.read_bytes().startswith(b"\xff\xfe")
    assert "not UTF-8" in Path(f"{quarantined}.error").read_text()
    twice = list(vm_uuids(cloud_message(0, 6))) * 2  # fill() numbers each call from 0
    assert received(endpoint) == sorted(twice)
    assert queue.count() == 0
    assert "in_quarantine=1" in summary
    assert summary.endswith(f"-- quarantined {corrupt} (not UTF-8 (invalid start byte at byte 0)) "
                            f"to {quarantined}")  # fmt: skip
    # The next run sends nothing new, but the message set aside stays in view.
    assert SendJob(endpoint.config(spool)).run() == 0
    again = capsys.readouterr().out.strip().splitlines()[-1]
    assert again.startswith("apel-send ok sent=0 kept=0 quarantined=0 in_quarantine=1"), again


def test_a_foreign_signer_is_rejected_by_the_endpoint_and_kept(pki, endpoint, tmp_path):
    spool = tmp_path / "spool"
    fill(spool, 1)
    config = endpoint.config(spool, cert=pki.foreign_cert, key=pki.foreign_key)
    assert SendJob(config).run() == 1  # the token call refuses the foreign client cert
    assert QueueSimple(str(spool)).count() == 1
    assert endpoint.stored() == []


def test_stale_locks_are_cleared_and_their_messages_sent(endpoint, tmp_path, capsys):
    spool = tmp_path / "spool"
    names = fill(spool, 3)
    queue = QueueSimple(str(spool))
    assert queue.lock(names[0])  # a run that died holding a lock
    old = time.time() - 3600
    os.utime(spool / f"{names[0]}.lck", (old, old))
    assert queue.lock(names[1])  # a lock held right now by another sender: leave it
    assert SendJob(endpoint.config(spool)).run() == 1
    summary = capsys.readouterr().out
    assert "sent=2 kept=1" in summary and "stale_locks=1" in summary
    assert received(endpoint) == sorted(vm_uuids(cloud_message(0, 3) + cloud_message(6, 3)))


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"", "empty"),
        (b"APEL-cloud-message: v0.4\nSiteName: X\n", "lacking VMUUID"),
        (b'{"Type": "something else"}', "unknown JSON message type"),
        (b"random text", "unknown header"),
        (b'{"Type": "APEL Public IP message", "UsageRecords": []}', "without UsageRecords"),
        (b"<sr:StorageUsageRecords xmlns:sr='x'></sr:StorageUsageRecords>", "not a StAR"),
    ],
)
def test_messages_apel_would_never_accept_are_recognised(body, problem):
    assert problem in (problem_with(body) or "")


@pytest.mark.parametrize("kind", ["cloud", "ip", "accelerator", "storage"])
def test_what_caso_writes_is_sendable(kind, tmp_path):
    spool = tmp_path / "spool"
    (name,) = caso_spool(spool, caso_records(kind, 0, 5))
    body = (spool / name).read_bytes()
    assert problem_with(body) is None
    parsed = messages.parse(body)
    assert parsed.form.kind == kind and len(parsed.records) == 5
    assert parsed.form.build(parsed.records) == body  # rebuilt byte for byte


def test_a_static_token_file_replaces_the_certificate_token_call(endpoint, tmp_path):
    endpoint.stop()
    endpoint.token = "static-token-for-this-site"
    endpoint.start()
    token = tmp_path / "ams-token"
    token.write_text("wrong\n")
    token.chmod(0o600)
    spool = tmp_path / "spool"
    fill(spool, 2)
    # authx509 on a port nothing listens on: only the file can give the token
    config = endpoint.config(spool, token_file=token, authx509_port=endpoint.port + 500)
    assert SendJob(config).run() == 1  # 401: token refused, spool kept
    assert QueueSimple(str(spool)).count() == 2
    token.write_text("static-token-for-this-site\n")
    assert SendJob(config).run() == 0
    assert received(endpoint) == sorted(vm_uuids(cloud_message(0, 6)))


def _standin_module():
    import importlib.util

    from services.accounting.tests.conftest import STANDIN

    spec = importlib.util.spec_from_file_location("ams_standin", STANDIN)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_stand_in_rejects_altered_foreign_and_unlisted_signatures(pki):
    standin = _standin_module()
    ca = smime.load_cert(pki.ca)
    allowed = {"/DC=org/DC=test/O=Appliance/CN=accounting.appliance.test"}
    body = cloud_message(0, 2).encode()
    day = datetime.timedelta(hours=1)
    good = smime.load_signer(pki.host_cert, pki.host_key, day).sign(body)
    dn, received = standin.verify(good, ca, allowed)
    assert dn in allowed and received == body
    altered = good.replace(b"CpuCount: 2", b"CpuCount: 9", 1)
    with pytest.raises(standin.RejectedError, match="altered"):
        standin.verify(altered, ca, allowed)
    foreign = smime.load_signer(pki.foreign_cert, pki.foreign_key, day).sign(body)
    with pytest.raises(standin.RejectedError, match="not issued by the CA"):
        standin.verify(foreign, ca, allowed)
    unlisted = smime.load_signer(pki.server_cert, pki.server_key, day).sign(body)
    with pytest.raises(standin.RejectedError, match="not in the DN allow-list"):
        standin.verify(unlisted, ca, allowed)


def test_the_stand_in_accepts_what_openssl_itself_signs(pki, tmp_path):
    body = cloud_message(0, 1).encode()
    signed = subprocess.run(
        [
            "openssl",
            "smime",
            "-sign",
            "-inkey",
            str(pki.host_key),
            "-signer",
            str(pki.host_cert),
            "-text",
        ],
        input=body,
        capture_output=True,
        check=True,
    ).stdout
    standin = _standin_module()
    allowed = {"/DC=org/DC=test/O=Appliance/CN=accounting.appliance.test"}
    assert standin.verify(signed, smime.load_cert(pki.ca), allowed)[1] == body


def test_an_unlisted_signer_is_refused_at_publish_and_its_message_kept(pki, endpoint, tmp_path):
    endpoint.stop()
    endpoint.token = "site-token"
    endpoint.start()
    token = tmp_path / "ams-token"
    token.write_text("site-token\n")
    token.chmod(0o600)
    spool = tmp_path / "spool"
    fill(spool, 1)
    # a certificate from the right CA, but a DN the endpoint does not allow
    config = endpoint.config(spool, token_file=token, cert=pki.server_cert, key=pki.server_key)
    assert SendJob(config).run() == 1
    assert QueueSimple(str(spool)).count() == 1
    assert endpoint.stored() == []
    assert "not in the DN allow-list" in endpoint.rejected()[0]["error"]
