"""AMS through argo-ams-library: token or certificate auth, and what the library cannot do.

The stand-in speaks AMS's wire protocol; the library is the one APEL SSM 4
uses. One need the library cannot meet, a bounded certificate exchange, is
measured here against a server that accepts connections and never answers.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import argo_ams_library
import pytest
from dirq.QueueSimple import QueueSimple

from fedcloud_accounting.errors import EndpointDownError
from fedcloud_accounting.send import SendJob
from fedcloud_accounting.transports.ams import AmsTransport
from services.accounting.tests.apel_samples import cloud_message, fill, stored_vm_uuids, vm_uuids
from services.accounting.tests.conftest import PORT_BASE, free_port


def test_publishes_go_through_the_library_bounded_and_verified(endpoint, tmp_path, monkeypatch):
    calls: list[dict[str, object]] = []
    publish = argo_ams_library.ArgoMessagingService.publish

    def spy(self, topic, msg, **kwargs):
        calls.append({"topic": topic, "count": len(msg), **kwargs})
        return publish(self, topic, msg, **kwargs)

    monkeypatch.setattr(argo_ams_library.ArgoMessagingService, "publish", spy)
    spool = tmp_path / "spool"
    fill(spool, 3)
    assert SendJob(endpoint.config(spool, message_timeout_s=7)).run() == 0
    assert calls == [
        {
            "topic": "eu-egi-cloud-accounting",
            "count": 1,
            "timeout": (7.0, 7.0),
            "verify": str(endpoint.pki.ca),
        }
    ]
    assert stored_vm_uuids(endpoint) == sorted(vm_uuids(cloud_message(0, 9)))


def test_token_auth_makes_no_certificate_call(endpoint, tmp_path):
    endpoint.stop()
    endpoint.token = "site-token"
    endpoint.start()
    token = tmp_path / "ams-token"
    token.write_text("site-token\n")
    token.chmod(0o600)
    spool = tmp_path / "spool"
    fill(spool, 2)
    # nothing listens on the authx509 port: only the token can work
    config = endpoint.config(spool, token_file=token, authx509_port=endpoint.port + 700)
    assert SendJob(config).run() == 0
    assert QueueSimple(str(spool)).count() == 0
    assert stored_vm_uuids(endpoint) == sorted(vm_uuids(cloud_message(0, 6)))


@pytest.fixture
def silent_port():
    """A TLS-less port that accepts connections and never says a word."""
    port = free_port(PORT_BASE + 900)
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield port
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_the_librarys_certificate_exchange_has_no_time_bound_ours_has(
    endpoint, tmp_path, silent_port
):
    # the library: still waiting after 3 s (it would wait for ever)
    done = threading.Event()

    def library_exchange() -> None:
        with contextlib.suppress(Exception):  # only whether it returns matters
            argo_ams_library.ArgoMessagingService(
                endpoint="localhost",
                project="accounting",
                cert=str(endpoint.pki.host_cert),
                key=str(endpoint.pki.host_key),
                authn_port=silent_port,
            )
        done.set()

    threading.Thread(target=library_exchange, daemon=True).start()
    assert not done.wait(3), "the library's authx509 call returned: re-check ams.py's comment"
    # ours: refused within the per-message bound
    config = endpoint.config(tmp_path / "spool", authx509_port=silent_port, message_timeout_s=1)
    began = time.monotonic()
    with pytest.raises(EndpointDownError, match="no token"):
        AmsTransport(config).open()
    assert time.monotonic() - began < 3
