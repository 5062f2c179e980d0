"""The job's HTTP settings act as configured, against the real HTTPS test server.

``parallel_downloads``, ``retries``, ``timeout_s`` and a list's ``enabled``
are keys of appliance.yaml (``images.parallel_downloads``,
``download_retries``, ``http_timeout_s``, ``lists[].enabled``); these tests
run ``Job.sync`` with them set and watch what reaches the server. Glance
plays no part before the hand-over, so it is a fake with no images; the
Glance side is covered in test_glance_sync.py.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedcloud_cloudkeeper import fetch
from fedcloud_cloudkeeper.config import Config
from fedcloud_cloudkeeper.job import Job

from .conftest import image_entry, image_list
from .test_glance_sync import qcow2


class NoImages:
    """Glance as a site with none of our images sees it."""

    def managed(self, list_name: str | None = None) -> list:
        return []


class InFlight:
    """Counts image requests under way at once through a real session."""

    def __init__(self, ca_dir: Path) -> None:
        self.http = fetch.session(str(ca_dir))
        self.now = self.most = 0
        self.lock = threading.Lock()
        send = self.http.get

        def get(url: str, **kwargs: object):  # type: ignore[no-untyped-def]
            if "/images/" not in url:
                return send(url, **kwargs)
            with self.lock:
                self.now += 1
                self.most = max(self.most, self.now)
            try:
                time.sleep(0.3)  # long enough for every allowed worker to be in here together
                return send(url, **kwargs)
            finally:
                with self.lock:
                    self.now -= 1

        self.http.get = get  # type: ignore[method-assign]


def _config(signing, tmp_path: Path, path: str, **settings: object) -> Config:
    values: dict = {
        "lists": (signing.source("demo", path),),
        "ca_path": signing.ca_dir,
        "https_verify": str(signing.ca_dir),
        "state_dir": tmp_path / "state",
        "spool_dir": tmp_path / "spool",
        "cache_dir": tmp_path / "cache",
        "backoff_s": 0.01,
        "reserve_bytes": 0,
    }
    return Config(**(values | settings))


def _publish(signing, tmp_path: Path, path: str, names: list[str]) -> None:
    entries = []
    for name in names:
        data = qcow2(tmp_path, 1, name)
        signing.server.files[f"/images/{name}"] = data
        entries.append(image_entry(name, data, signing.server.url))
    signing.publish(path, image_list(entries))


@pytest.mark.parametrize("parallel", [1, 3])
def test_no_more_images_download_at_once_than_parallel_downloads(signing, tmp_path, parallel):
    path = f"/lists/parallel-{parallel}"
    names = [f"par{parallel}-{n}" for n in range(6)]
    _publish(signing, tmp_path, path, names)
    meter = InFlight(signing.ca_dir)
    config = _config(signing, tmp_path, path, parallel_downloads=parallel)
    report = Job(config, NoImages(), http=meter.http).sync()
    assert not report.failed, report
    assert meter.most == parallel
    assert sorted(p.name.split("-")[1] for p in (tmp_path / "cache" / "demo").iterdir()) == [
        str(n) for n in range(6)
    ]


@pytest.mark.parametrize(("retries", "failed"), [(0, True), (1, False)])
def test_a_failing_image_server_is_retried_as_often_as_retries_says(
    signing, tmp_path, retries, failed
):
    path = f"/lists/retries-{retries}"
    name = f"flaky-{retries}"
    _publish(signing, tmp_path, path, [name])
    signing.server.fail_next[f"/images/{name}"] = 503  # the first request only
    signing.server.requests.clear()
    report = Job(_config(signing, tmp_path, path, retries=retries), NoImages()).sync()
    (outcome,) = report.lists
    asked = [p for p, _ in signing.server.requests if p == f"/images/{name}"]
    assert len(asked) == 1 + retries
    assert report.failed is failed
    assert ("HTTP 503" in " ".join(outcome.errors)) is failed


@pytest.fixture
def silent_server() -> Iterator[str]:
    """An HTTPS URL whose server accepts connections and then never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"https://127.0.0.1:{listener.getsockname()[1]}"


def test_a_list_server_that_stops_answering_fails_after_timeout_s(signing, tmp_path, silent_server):
    config = _config(signing, tmp_path, "/unused", timeout_s=0.5)
    config = config.model_copy(
        update={"lists": (signing.source("demo", "/unused", url=f"{silent_server}/list"),)}
    )
    started = time.monotonic()
    report = Job(config, NoImages()).sync()
    (outcome,) = report.lists
    assert outcome.state == "error" and "timed out" in outcome.reason
    assert time.monotonic() - started < 5  # not the default 30 s


def test_an_image_server_that_stops_answering_fails_after_timeout_s(
    signing, tmp_path, silent_server
):
    path = "/lists/silent-image"
    entry = image_entry("silent", b"x" * 1024, signing.server.url)
    entry["hv:image"]["hv:uri"] = f"{silent_server}/images/silent"
    signing.publish(path, image_list([entry]))
    config = _config(signing, tmp_path, path, timeout_s=0.5, retries=0)
    started = time.monotonic()
    report = Job(config, NoImages()).sync()
    (outcome,) = report.lists
    assert outcome.state == "ok" and "timed out" in " ".join(outcome.errors)
    assert time.monotonic() - started < 5


def test_a_disabled_list_is_not_fetched(signing, tmp_path):
    path = "/lists/disabled"
    _publish(signing, tmp_path, path, ["off-1"])
    config = _config(signing, tmp_path, path)
    config = config.model_copy(
        update={"lists": (config.lists[0].model_copy(update={"enabled": False}),)}
    )
    signing.server.requests.clear()
    report = Job(config, NoImages()).sync()
    assert report.lists == [] and signing.server.requests == []
