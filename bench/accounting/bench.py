"""bench-accounting: messages/s and peak memory, ours vs the naive baseline.

Both sides start from the same dirq spool of cASO-style cloud messages and
deliver to the same AMS stand-in (which verifies every signature), in the
same run:

- naive: per message, ``openssl smime -sign -text`` in a new process, then a
  new HTTPS connection and one publish (what ssmsend does);
- ours: ``fedcloud-accounting send`` as its own process (in-process S/MIME,
  one kept-alive session, batched publishes), timed end to end, start-up
  included.

Memory: ours is measured at two spool sizes (N and 4N messages); the ratio
shows whether memory grows with the queue.

Mixed: 100,000 records of the four types cASO's ssm messenger writes
(cloud, ip, accelerator, storage), written by cASO itself 100 per message,
sent under the default size limit. Reported: APEL messages sent against the
fewest possible (each type's records signed as one message, divided by the
limit), records/s against the naive baseline on the same spool, peak RSS.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from dirq.QueueSimple import QueueSimple

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from fedcloud_accounting import messages, smime  # noqa: E402
from fedcloud_common.settings.accounting import MAX_MESSAGE_BYTES  # noqa: E402
from services.accounting.tests.apel_samples import (  # noqa: E402
    caso_records,
    caso_spool,
    cloud_message,
)
from tests.support.testca import TestCA  # noqa: E402

RECORDS = int(os.environ.get("BENCH_RECORDS", "10000"))
PER_MESSAGE = int(os.environ.get("BENCH_RECORDS_PER_MESSAGE", "10"))
NAIVE_MESSAGES = int(os.environ.get("BENCH_NAIVE_MESSAGES", "200"))
MIXED_RECORDS = int(os.environ.get("BENCH_MIXED_RECORDS", "100000"))
KINDS = ("cloud", "ip", "accelerator", "storage")
PORT, AUTH_PORT = 42800, 42801
DN = "/DC=org/DC=test/O=Appliance/CN=accounting.appliance.test"


def make_pki(d: Path) -> None:
    """The bench's PKI in ``d``, made by the tests' CA (tests/support/testca.py).

    ca.pem; host.pem/.key, what the sender signs with; server.pem/.key, the
    stand-in's; and ``allowed``, the stand-in's DN allow-list.
    """
    ca = TestCA(d, dn="/DC=org/DC=test/O=Appliance/CN=Bench CA")
    ca.issue("host", DN)
    ca.issue("server", "/CN=localhost", san="DNS:localhost")
    (d / "allowed").write_text(DN + "\n")


def fill(spool: Path, messages: int) -> None:
    queue = QueueSimple(str(spool))
    for m in range(messages):
        queue.add(cloud_message(m * PER_MESSAGE, PER_MESSAGE))


def start_standin(d: Path, store: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "demo/accounting-endpoint/ams_standin.py"),
            "--port",
            str(PORT),
            "--authx509-port",
            str(AUTH_PORT),
            "--cert",
            str(d / "server.pem"),
            "--key",
            str(d / "server.key"),
            "--ca",
            str(d / "ca.pem"),
            "--allowed-dns",
            str(d / "allowed"),
            "--store",
            str(store),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and "listening" in process.stdout.readline()
    return process


def naive(d: Path, spool: Path, count: int) -> tuple[float, float]:
    """ssmsend's way: a process to sign, a fresh connection to publish.

    Returns (spool messages/s, records/s).
    """
    ca = str(d / "ca.pem")
    began = time.perf_counter()
    token = requests.get(
        f"https://localhost:{AUTH_PORT}/v1/service-types/ams/hosts/localhost:authx509",
        cert=(str(d / "host.pem"), str(d / "host.key")),
        verify=ca,
        timeout=30,
    ).json()["token"]
    queue = QueueSimple(str(spool))
    sent = records = 0
    name = queue.first()
    while name and sent < count:
        if queue.lock(name):
            records += len(messages.parse(queue.get(name)).records)
            signed = subprocess.run(
                [
                    "openssl",
                    "smime",
                    "-sign",
                    "-inkey",
                    str(d / "host.key"),
                    "-signer",
                    str(d / "host.pem"),
                    "-text",
                ],
                input=queue.get(name),
                capture_output=True,
                check=True,
            ).stdout
            body = {
                "messages": [
                    {"attributes": {"empaid": name}, "data": base64.b64encode(signed).decode()}
                ]
            }
            reply = requests.post(
                f"https://localhost:{PORT}/v1/projects/accounting/topics/bench:publish",
                json=body,
                headers={"x-api-key": token},
                verify=ca,
                timeout=30,
            )
            reply.raise_for_status()
            queue.remove(name)
            sent += 1
        name = queue.next()
    elapsed = time.perf_counter() - began
    return sent / elapsed, records / elapsed


def ours(d: Path, spool: Path, work: Path) -> tuple[float, float, dict[str, str]]:
    """(spool msgs/s, peak RSS MB, summary counts) for one `fedcloud-accounting send` run."""
    count = QueueSimple(str(spool)).count()
    config = work / f"send-{count}.json"
    send = {
        "protocol": "ams",
        "host": "localhost",
        "port": PORT,
        "authx509_port": AUTH_PORT,
        "destination": "bench",
        "cert": str(d / "host.pem"),
        "key": str(d / "host.key"),
        "ca_bundle": str(d / "ca.pem"),
        "spool_dir": str(spool),
        "quarantine_dir": str(work / "quarantine"),
    }
    # accounting.json holds both jobs' parts; the sender never uses this one
    extract = {
        "site_name": "BENCH",
        "openstack": {
            "auth_url": "https://keystone.invalid/v3",
            "username": "unused",
            "password_file": str(work / "unused"),
            "project_name": "unused",
        },
        "project_tag": "unused",
        "start_date": "2026-01-01",
    }
    config.write_text(json.dumps({"extract": extract, "send": send}))
    began = time.perf_counter()
    process = subprocess.Popen(
        [str(ROOT / ".venv/bin/fedcloud-accounting"), "send", "--config", str(config)],
        stdout=subprocess.PIPE,
        text=True,
    )
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - began
    summary = process.stdout.read().strip().splitlines()[-1] if process.stdout else ""
    process.returncode = os.waitstatus_to_exitcode(status)
    print(f"  {summary}", flush=True)
    assert process.returncode == 0 and f"sent={count}" in summary, summary
    counts = dict(f.split("=", 1) for f in summary.split(" -- ")[0].split()[2:])
    return count / elapsed, usage.ru_maxrss / 1024, counts


def received_records(store: Path) -> int:
    return sum(
        len(messages.parse(json.loads(p.read_text())["body"].encode()).records)
        for p in store.glob("*.json")
    )


def fewest_messages(d: Path, spool: Path) -> int:
    """The fewest messages the limit allows: each type's records as one signed message."""
    signer = smime.load_signer(d / "host.pem", d / "host.key", __import__("datetime").timedelta())
    queue = QueueSimple(str(spool))
    by_kind: dict[str, tuple[messages.Form, list[bytes]]] = {}
    name = queue.first()
    while name:
        parsed = messages.parse((spool / name).read_bytes())
        by_kind.setdefault(parsed.form.kind, (parsed.form, []))[1].extend(parsed.records)
        name = queue.next()
    fewest = 0
    for form, records in by_kind.values():
        signed = signer.sign(form.build(records))
        wire = 4 * -(-len(signed) // 3)  # base64 in the publish request
        fewest += -(-wire // MAX_MESSAGE_BYTES)
    return fewest


def library_vs_session(d: Path, count: int = 200) -> tuple[float, float]:
    """Publishes/s of one small signed message: argo-ams-library vs a kept-alive session.

    The library opens a new HTTPS connection for each publish; this is what
    that costs, measured on the same message and stand-in.
    """
    from argo_ams_library import ArgoMessagingService

    ca = str(d / "ca.pem")
    token = requests.get(
        f"https://localhost:{AUTH_PORT}/v1/service-types/ams/hosts/localhost:authx509",
        cert=(str(d / "host.pem"), str(d / "host.key")),
        verify=ca,
        timeout=30,
    ).json()["token"]
    signer = smime.load_signer(d / "host.pem", d / "host.key", __import__("datetime").timedelta())
    data = base64.b64encode(signer.sign(cloud_message(0, 1).encode())).decode()
    entry = [{"attributes": {"empaid": "bench"}, "data": data}]
    ams = ArgoMessagingService(endpoint=f"localhost:{PORT}", token=token, project="accounting")
    began = time.perf_counter()
    for _ in range(count):
        ams.publish("bench-library", entry, timeout=30, verify=ca)
    library = count / (time.perf_counter() - began)
    url = f"https://localhost:{PORT}/v1/projects/accounting/topics/bench-session:publish"
    with requests.Session() as session:
        began = time.perf_counter()
        for _ in range(count):
            session.post(
                url, json={"messages": entry}, headers={"x-api-key": token}, verify=ca, timeout=30
            ).raise_for_status()
        kept_alive = count / (time.perf_counter() - began)
    print(
        f"  publish of one message, {count} times: argo-ams-library {library:.0f}/s "
        f"(new connection each), kept-alive session {kept_alive:.0f}/s",
        flush=True,
    )
    return library, kept_alive


def mixed(d: Path, work: Path, store: Path) -> tuple[float, int, int, float]:
    """100,000 mixed records: (records/s ratio vs naive, messages, fewest, peak RSS MB)."""
    spool, naive_spool = work / "mixed", work / "mixed-naive"
    per_kind = MIXED_RECORDS // len(KINDS)
    # made by a child process: a sender forked from a bench holding 100,000
    # records would count the bench's pages in its own peak RSS
    helper = [sys.executable, __file__]
    subprocess.run([*helper, "--fill-mixed", str(spool), str(naive_spool)], check=True)
    fewest = int(
        subprocess.run(
            [*helper, "--fewest", str(d), str(spool)], check=True, capture_output=True, text=True
        ).stdout
    )
    _, naive_records = naive(d, naive_spool, NAIVE_MESSAGES)
    print(f"  naive, mixed ({NAIVE_MESSAGES} messages): {naive_records:.0f} records/s", flush=True)
    before = received_records(store)
    began = time.perf_counter()
    _, rss, counts = ours(d, spool, work)
    elapsed = time.perf_counter() - began
    assert int(counts["records"]) == per_kind * len(KINDS), counts
    assert received_records(store) - before == per_kind * len(KINDS)
    rate = per_kind * len(KINDS) / elapsed
    print(
        f"  ours, mixed ({per_kind * len(KINDS)} records): {rate:.0f} records/s, "
        f"{counts['messages']} messages (fewest possible under {MAX_MESSAGE_BYTES} bytes: "
        f"{fewest}), peak RSS {rss:.1f} MB",
        flush=True,
    )
    return rate / naive_records, int(counts["messages"]), fewest, rss


def fill_mixed(spool: Path, naive_spool: Path) -> None:
    per_kind = MIXED_RECORDS // len(KINDS)
    for kind in KINDS:
        records = caso_records(kind, 0, per_kind)
        caso_spool(spool, records)  # cASO's default: 100 records per message
        caso_spool(naive_spool, records[: NAIVE_MESSAGES * 100 // len(KINDS)])


def main() -> int:
    if sys.argv[1:2] == ["--fill-mixed"]:
        fill_mixed(Path(sys.argv[2]), Path(sys.argv[3]))
        return 0
    if sys.argv[1:2] == ["--fewest"]:
        print(fewest_messages(Path(sys.argv[2]), Path(sys.argv[3])))
        return 0
    messages = RECORDS // PER_MESSAGE
    with tempfile.TemporaryDirectory(prefix="bench-accounting-") as tmp:
        work = Path(tmp)
        pki = work / "pki"
        make_pki(pki)
        store = work / "received"
        standin = start_standin(pki, store)
        try:
            print(
                f"bench-accounting: {RECORDS} records, {PER_MESSAGE} per message "
                f"= {messages} messages; stand-in verifies every signature",
                flush=True,
            )
            fill(work / "naive", NAIVE_MESSAGES)
            naive_rate, _ = naive(pki, work / "naive", NAIVE_MESSAGES)
            print(
                f"  naive (openssl process + new HTTPS POST per message, "
                f"{NAIVE_MESSAGES} messages): {naive_rate:.1f} msgs/s",
                flush=True,
            )
            fill(work / "ours", messages)
            rate, rss, _ = ours(pki, work / "ours", work)
            print(
                f"  ours ({messages} messages): {rate:.1f} msgs/s, peak RSS {rss:.1f} MB",
                flush=True,
            )
            fill(work / "ours4", messages * 4)
            rate4, rss4, _ = ours(pki, work / "ours4", work)
            print(
                f"  ours ({messages * 4} messages): {rate4:.1f} msgs/s, peak RSS "
                f"{rss4:.1f} MB (x{rss4 / rss:.2f} memory for x4 queue)",
                flush=True,
            )
            received = received_records(store)
            expected = (NAIVE_MESSAGES + messages * 5) * PER_MESSAGE
            assert received == expected, f"stand-in stored {received}, expected {expected}"
            mixed_ratio, sent, fewest, mixed_rss = mixed(pki, work, store)
            library, kept_alive = library_vs_session(pki)
        finally:
            standin.terminate()
            standin.wait()
    print(
        f"bench-accounting speedup_vs_naive={rate / naive_rate:.1f} "
        f"msgs_per_s={rate:.1f} peak_rss_mb={rss:.1f} "
        f"mixed_speedup_vs_naive={mixed_ratio:.1f} mixed_messages={sent} "
        f"mixed_fewest={fewest} mixed_messages_vs_fewest={sent / fewest:.2f} "
        f"mixed_peak_rss_mb={mixed_rss:.1f} "
        f"library_publish_per_s={library:.0f} session_publish_per_s={kept_alive:.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
