"""Messages the broker accepts: packed under the limit, split on records, 413 survived.

Spools are written by cASO's own ssm messenger (every record type), sent
through the AMS stand-in, which refuses a publish over its limit with 413
as AMS does; every record must arrive exactly once, in its own type's form.
"""

from __future__ import annotations

import collections
import math

import pytest
from dirq.QueueSimple import QueueSimple

from fedcloud_accounting import messages
from fedcloud_accounting.send import SendJob
from services.accounting.tests.apel_samples import caso_records, caso_spool

KINDS = ("cloud", "ip", "accelerator", "storage")


def arrived(endpoint) -> collections.Counter[tuple[str, str]]:
    """(kind, record key) of every record the stand-in stored, with how often."""
    found: collections.Counter[tuple[str, str]] = collections.Counter()
    for stored in endpoint.stored():
        parsed = messages.parse(stored["body"].encode())
        for record in parsed.records:
            found[parsed.form.kind, messages.record_key(parsed.form.kind, record)] += 1
    return found


def expected(kinds: dict[str, int]) -> collections.Counter[tuple[str, str]]:
    return collections.Counter(
        (kind, f"00000000-0000-0000-0000-{n + 1:012x}")
        for kind, count in kinds.items()
        for n in range(count)
    )


def summary(capsys) -> dict[str, str]:
    line = capsys.readouterr().out.strip().splitlines()[-1]
    return dict(f.split("=", 1) for f in line.split(" -- ")[0].split()[2:])


def test_a_spool_message_over_the_limit_is_split_and_every_record_arrives_once(
    endpoint, tmp_path, capsys
):
    limit = 40_000
    endpoint.stop()
    endpoint.max_bytes = limit  # the broker enforces what the sender is told
    endpoint.start()
    spool = tmp_path / "spool"
    counts = {"cloud": 300, "ip": 400, "accelerator": 300, "storage": 300}
    for kind, count in counts.items():
        # cASO told to put every record in one message: each is well over the limit
        caso_spool(spool, caso_records(kind, 0, count), max_size=1000)
    sizes = {k: len(m) for k, m in _bodies(spool).items()}
    assert all(size > limit for size in sizes.values()), sizes
    assert SendJob(endpoint.config(spool, max_message_bytes=limit)).run() == 0
    found = summary(capsys)
    assert found["too_large"] == "0", found  # built under the limit: never refused
    assert arrived(endpoint) == expected(counts)
    assert QueueSimple(str(spool)).count() == 0
    stored = endpoint.stored()
    # each type in its own messages, none mixing two types
    assert {messages.parse(s["body"].encode()).form.kind for s in stored} == set(KINDS)
    # close to the fewest messages the limit allows (signing adds ~4/3 + a few KB)
    fewest = sum(math.ceil(size * 4 / 3 / limit) for size in sizes.values())
    assert fewest <= len(stored) <= fewest * 1.5 + 4, (fewest, len(stored))


def test_small_messages_of_a_type_are_packed_together_up_to_the_limit(endpoint, tmp_path, capsys):
    spool = tmp_path / "spool"
    for first in range(0, 200, 10):  # what cASO writes with max_size=10: 20 messages
        caso_spool(spool, caso_records("cloud", first, 10), max_size=10)
    caso_spool(spool, caso_records("ip", 0, 30), max_size=10)
    assert SendJob(endpoint.config(spool)).run() == 0
    found = summary(capsys)
    assert found["sent"] == "23" and found["messages"] == "2" and found["records"] == "230"
    assert arrived(endpoint) == expected({"cloud": 200, "ip": 30})


def test_a_413_mid_send_splits_and_resends_and_nothing_is_lost_or_doubled(
    endpoint, tmp_path, capsys
):
    endpoint.stop()
    endpoint.max_bytes = 60_000  # a broker stricter than the sender was told
    endpoint.start()
    spool = tmp_path / "spool"
    counts = {"cloud": 500, "storage": 200}
    for kind, count in counts.items():
        caso_spool(spool, caso_records(kind, 0, count), max_size=100)
    assert SendJob(endpoint.config(spool)).run() == 0  # configured: just under 1 MB
    found = summary(capsys)
    assert int(found["too_large"]) >= 1
    assert int(found["limit_bytes"]) <= 60_000, found  # what the run learnt
    assert arrived(endpoint) == expected(counts)
    assert QueueSimple(str(spool)).count() == 0
    assert endpoint.rejected() == []


def test_a_single_record_over_the_limit_is_set_aside_and_the_rest_sent(endpoint, tmp_path, capsys):
    spool = tmp_path / "spool"
    records = caso_records("cloud", 0, 5)
    records[2] = caso_records("cloud", 2, 1, pad=30_000)[0]  # a VM with a 30 kB name
    (name,) = caso_spool(spool, records)
    assert SendJob(endpoint.config(spool, max_message_bytes=20_000)).run() == 1
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("apel-send partial sent=1 kept=0 quarantined=1"), line
    assert "over the 20000-byte limit" in line
    assert arrived(endpoint) == expected({"cloud": 5}) - collections.Counter(
        {("cloud", "00000000-0000-0000-0000-000000000003"): 1}
    )
    aside = tmp_path / "quarantine" / f"{name.replace('/', '-')}.record2"
    assert b"VMUUID: 00000000-0000-0000-0000-000000000003" in aside.read_bytes()
    assert QueueSimple(str(spool)).count() == 0


@pytest.mark.parametrize("limit", [1_000, 16_383])
def test_a_limit_too_small_for_one_signed_record_is_refused(endpoint, tmp_path, limit):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="max_message_bytes"):
        endpoint.config(tmp_path / "spool", max_message_bytes=limit)


def _bodies(spool) -> dict[str, bytes]:
    return {
        str(p.relative_to(spool)): p.read_bytes()
        for p in spool.glob("*/*")
        if p.is_file() and not p.name.endswith(".lck")
    }
