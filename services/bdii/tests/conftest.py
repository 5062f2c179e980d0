"""Real slapd instances for the tests, on ports from the bdii range (41000-41999)."""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fedcloud_bdii.slapd import Slapd, SlapdLayout, connect_updater
from fedcloud_bdii.updater import Updater
from tests.support import ports

PORTS = range(41000, 42000)


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A temporary directory slapd can enter.

    pytest's tmp_path is mode 0700 under root, and when the tests run as root
    slapd drops to the openldap user.
    """
    path = Path(tempfile.mkdtemp(prefix="bdii-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def start_slapd(open_tmp: Path) -> Iterator:
    """Start as many BDII slapds as a test needs; all stop at teardown."""
    started: list[Slapd] = []
    tmp_path = open_tmp

    def start(name: str = "bdii") -> SlapdLayout:
        layout = SlapdLayout(root=tmp_path / name, port=ports.free_port(PORTS))
        server = Slapd(layout)
        server.start()
        started.append(server)
        return layout

    start.servers = started  # type: ignore[attr-defined]  # a test may stop one
    yield start
    for server in started:
        server.stop()


@pytest.fixture
def resource(start_slapd, tmp_path: Path):
    """(layout, updater) of one resource BDII, delete delay 0."""
    layout = start_slapd("resource")
    return layout, Updater(connect_updater(layout), tmp_path / "state", delete_delay=0)


def _ldapsearch(uri: str, *args: str) -> str:
    done = subprocess.run(
        ["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", uri, "-b", "o=glue", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


@pytest.fixture
def ldapsearch():
    """The real ldapsearch client, as an operator would run it (-x -H URI -b o=glue)."""
    return _ldapsearch


@pytest.fixture
def free_port() -> Callable[[], int]:
    """A function returning a free port in the bdii range."""
    return functools.partial(ports.free_port, PORTS)
