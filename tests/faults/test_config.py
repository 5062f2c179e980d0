"""Faults of configuration: a bad appliance.yaml, a supervisor restarted on it, missing renders.

The supervisor's own config wait (``cli._valid_config``) serves the real
status page on a free port; the command lines run as an operator runs them.
What must survive a bad file: the file itself (nothing rewrites it), and
no job starts on half a configuration.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from fedcloud_appliance import cli
from tests.support.applianceconfig import MINIMAL, SECRET, write_password
from tests.support.ports import free_port

BIN = Path(sys.executable).parent


def _appliance_yaml(tmp_path: Path, text: str) -> Path:
    password = write_password(tmp_path)
    path = tmp_path / "appliance.yaml"
    path.write_text(MINIMAL.replace("PASSWORD", str(password)) + text)
    return path


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def _get_json(url: str, within: float = 10) -> dict:
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                return json.load(reply)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _start_waiting(path: Path, port: int) -> tuple[threading.Event, threading.Thread, list]:
    stop, found = threading.Event(), []
    waiting = threading.Thread(
        target=lambda: found.append(
            cli._valid_config(argparse.Namespace(config=str(path)), stop, port)
        )
    )
    waiting.start()
    return stop, waiting, found


def test_a_bad_config_and_a_supervisor_restart_keep_the_page_up_showing_the_error(
    tmp_path, monkeypatch
):
    path = _appliance_yaml(tmp_path, "images: {schedul: '0 * * * *'}\n")
    written = path.read_bytes()
    monkeypatch.setattr(cli, "CONFIG_RETRY_S", 0.2)
    port = free_port(range(46000, 47000))
    want = "images.schedul: not a known key; did you mean 'schedule'?"
    stop, waiting, found = _start_waiting(path, port)
    try:
        assert want in _get_json(f"http://127.0.0.1:{port}/status.json")["config_error"]
    finally:
        stop.set()  # the supervisor is stopped ...
        waiting.join(10)
    assert found == [None]  # ... without having started anything
    stop, waiting, found = _start_waiting(path, port)  # ... and started again on the same file
    try:
        shown = _get_json(f"http://127.0.0.1:{port}/status.json")
        assert want in shown["config_error"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as reply:
            assert "Configuration error: no job runs until it is fixed" in reply.read().decode()
        assert path.read_bytes() == written  # nothing rewrote the operator's file
        path.write_text(path.read_text().replace("schedul:", "schedule:"))
        waiting.join(10)
        assert found and found[0].images.schedule == "0 * * * *"  # the fix is picked up
    finally:
        stop.set()
        waiting.join(10)


def test_appliance_status_on_a_bad_config_prints_the_error_instead_of_a_traceback(tmp_path):
    path = _appliance_yaml(tmp_path, "site: {name: X}\n")
    done = _run(str(BIN / "appliance"), "--config", str(path), "status")
    assert done.returncode == 2
    assert done.stdout.startswith("CONFIGURATION ERROR")
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ("bdii: {port: 2170}\nbdii: {port: 2171}\n",
         "bdii: given twice (lines"),
        ("images: {schedul: '0 * * * *'}\n",
         "images.schedul: not a known key; did you mean 'schedule'?"),
        ("images:\n  lists:\n    - {name: x, url: 'file:///etc/passwd', vo: v, project: p}\n",
         "images.lists[0].url"),
    ],
    ids=["duplicate-yaml-keys", "misspelt-key", "file-url"],
)  # fmt: skip
def test_config_check_refuses_a_realistic_mistake_naming_the_key_and_leaves_the_file(
    tmp_path, extra, says
):
    path = _appliance_yaml(tmp_path, extra)
    written = path.read_bytes()
    done = _run(str(BIN / "appliance"), "--config", str(path), "config", "check")
    assert done.returncode == 2
    assert says in done.stderr, done.stderr
    assert SECRET not in done.stdout + done.stderr
    assert path.read_bytes() == written


def test_a_password_file_others_can_read_is_refused_with_the_chmod_that_fixes_it(tmp_path):
    path = _appliance_yaml(tmp_path, "")
    (tmp_path / "secrets" / "password").chmod(0o644)
    done = _run(str(BIN / "appliance"), "--config", str(path), "config", "check")
    assert done.returncode == 2
    assert "password" in done.stderr and "lets others read it; run: chmod 600" in done.stderr
    assert SECRET not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("command", "says"),
    [
        (("cloudkeeper", "--config", "{dir}/cloudkeeper.json", "sync"),
         "cloudkeeper.json: does not exist; is the render step done"),
        (("fedcloud-accounting", "send", "--config", "{dir}/accounting.json"),
         "accounting.json: does not exist"),
    ],
    ids=["image-sync", "apel-send"],
)  # fmt: skip
def test_a_job_whose_rendered_config_is_missing_fails_with_the_fix_not_a_traceback(
    tmp_path, command, says
):
    program, *args = command
    done = _run(str(BIN / program), *(a.format(dir=tmp_path) for a in args))
    assert done.returncode in (1, 2)
    assert says in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_a_missing_rendered_config_fails_image_sync_with_its_reason_in_the_summary(tmp_path):
    done = _run(str(BIN / "cloudkeeper"), "--config", str(tmp_path / "ck.json"), "sync")
    from fedcloud_common.summary import parse_summary

    job, outcome, _ = parse_summary(done.stdout.strip().splitlines()[-1])
    assert (job, outcome, done.returncode) == ("cloudkeeper-sync", "failed", 1)
    assert done.stdout.strip().endswith("is the render step done (appliance render)?")
