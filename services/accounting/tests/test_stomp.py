"""The sender over STOMP, against a real RabbitMQ (Debian's, rabbitmq_stomp).

The broker runs as a private node on this package's ports (42500-42503),
with its own Erlang port mapper, data and cookie under the test's temp dir.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import stomp
from dirq.QueueSimple import QueueSimple

from fedcloud_accounting import messages
from fedcloud_accounting.send import SendJob
from fedcloud_common.settings.accounting import SendSettings
from services.accounting.tests.apel_samples import cloud_message, fill, vm_uuids
from services.accounting.tests.conftest import wait_port

AMQP, DIST, EPMD, STOMP, STOMP_TLS = 42500, 42501, 42502, 42503, 42504
QUEUE = "/queue/eu-egi-cloud-accounting"
RABBITMQ = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, pki):
    if not RABBITMQ.exists():
        pytest.fail("rabbitmq-server is not installed (see tools/host-packages)")
    base = tmp_path_factory.mktemp("rabbitmq")
    (base / "rabbitmq.conf").write_text(
        f"listeners.tcp.1 = 127.0.0.1:{AMQP}\n"
        f"stomp.listeners.tcp.1 = 127.0.0.1:{STOMP}\n"
        f"stomp.listeners.ssl.1 = 127.0.0.1:{STOMP_TLS}\n"
        f"ssl_options.cacertfile = {pki.ca}\n"
        f"ssl_options.certfile = {pki.server_cert}\n"
        f"ssl_options.keyfile = {pki.server_key}\n"
        "ssl_options.verify = verify_peer\n"
        "ssl_options.fail_if_no_peer_cert = true\n"
        "loopback_users = none\n"
    )
    (base / "enabled_plugins").write_text("[rabbitmq_stomp].\n")
    env = {
        **os.environ,
        "HOME": str(base),
        "RABBITMQ_NODENAME": "acct-stomp@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_DIST_PORT": str(DIST),
        "ERL_EPMD_PORT": str(EPMD),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_PID_FILE": str(base / "pid"),
        "RABBITMQ_LOGS": "-",
    }
    log = (base / "broker.log").open("w")
    process = subprocess.Popen(
        [str(RABBITMQ)], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        wait_port(STOMP, timeout=90)
        yield base
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=60)
        epmd = shutil.which("epmd") or "/usr/lib/erlang/bin/epmd"
        subprocess.run([epmd, "-kill"], env=env, capture_output=True, check=False)
        log.close()


def _config(pki, tmp_path: Path, port: int = STOMP, **overrides: object) -> SendSettings:
    password = tmp_path / "stomp-password"
    password.write_text("guest\n")
    password.chmod(0o600)
    values: dict[str, object] = {
        "protocol": "stomp",
        "host": "127.0.0.1",
        "port": port,
        "destination": QUEUE,
        "stomp_ssl": False,
        "stomp_vhost": "/",
        "stomp_username": "guest",
        "stomp_password_file": password,
        "cert": pki.host_cert,
        "key": pki.host_key,
        "spool_dir": tmp_path / "spool",
        "quarantine_dir": tmp_path / "quarantine",
        "message_timeout_s": 5,
    }
    values.update(overrides)
    return SendSettings.model_validate(values)


def _drain(expected: int, timeout: float = 20) -> list[stomp.utils.Frame]:
    """What a consumer (the APEL receiver's side) reads from the queue."""
    got: list[stomp.utils.Frame] = []
    done = threading.Event()

    class Listener(stomp.ConnectionListener):
        def on_message(self, frame: stomp.utils.Frame) -> None:
            got.append(frame)
            if len(got) >= expected:
                done.set()

    conn = stomp.Connection12([("127.0.0.1", STOMP)], vhost="/")
    conn.set_listener("drain", Listener())
    conn.connect("guest", "guest", wait=True)
    conn.subscribe(QUEUE, id="drain", ack="auto")
    done.wait(timeout)
    conn.disconnect()
    return got


def test_messages_reach_the_broker_signed_and_leave_the_spool(broker, pki, tmp_path):
    config = _config(pki, tmp_path)
    names = fill(config.spool_dir, 4)
    originals = {n: (config.spool_dir / n).read_text() for n in names}
    assert SendJob(config).run() == 0
    assert QueueSimple(str(config.spool_dir)).count() == 0
    # the four small spool messages travel packed as one APEL message, in order
    (frame,) = _drain(1)
    assert frame.headers["empa-id"] == min(names)
    signed = tmp_path / "signed.eml"
    signed.write_text(frame.body)
    verified = subprocess.run(
        ["openssl", "smime", "-verify", "-CAfile", str(pki.ca), "-in", str(signed), "-text"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stderr
    records = [r for n in sorted(names) for r in messages.parse(originals[n].encode()).records]
    body = verified.stdout.replace("\r\n", "\n").encode()
    assert messages.parse(body).records == records


def test_no_broker_keeps_the_spool_and_fails_fast(pki, tmp_path, capsys):
    config = _config(pki, tmp_path, port=STOMP + 1)  # nothing listens there
    fill(config.spool_dir, 2)
    began = time.monotonic()
    assert SendJob(config).run() == 1
    assert time.monotonic() - began < 15
    assert "apel-send failed sent=0 kept=2" in capsys.readouterr().out
    assert not list(config.spool_dir.glob("*/*.lck"))


def test_over_tls_with_the_host_certificate_as_client_certificate(broker, pki, tmp_path):
    config = _config(
        pki, tmp_path, port=STOMP_TLS, host="localhost", stomp_ssl=True, ca_bundle=pki.ca
    )
    names = fill(config.spool_dir, 2)
    assert SendJob(config).run() == 0
    (frame,) = _drain(1)
    assert frame.headers["empa-id"] == min(names)
    assert vm_uuids(frame.body) == vm_uuids(cloud_message(0, 6))


def test_tls_without_a_trusted_server_keeps_the_spool(broker, pki, tmp_path):
    config = _config(
        pki,
        tmp_path,
        port=STOMP_TLS,
        host="localhost",
        stomp_ssl=True,
        ca_bundle=pki.foreign_cert,  # not the CA that signed the broker
    )
    fill(config.spool_dir, 1)
    assert SendJob(config).run() == 1
    assert QueueSimple(str(config.spool_dir)).count() == 1
