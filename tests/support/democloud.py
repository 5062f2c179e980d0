"""The demo cloud as a pytest fixture.

Started through ``tools/demo cloud``, the first step of ``make demo``, under its
own compose project and shifted ports so it runs beside a developer's demo.
Tests connect with the clouds.yaml that command writes, so the snippet an
operator is shown is the one under test.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import openstack
import pytest

ROOT = Path(__file__).resolve().parents[2]
SEED_DATA = ROOT / "demo" / "cloud" / "democloud" / "data.py"


def load_seed_data() -> ModuleType:
    """The demo cloud's seed definition: what the tests expect to find."""
    spec = importlib.util.spec_from_file_location("democloud_seed", SEED_DATA)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


@dataclasses.dataclass
class DemoCloud:
    project: str
    port_offset: int
    clouds_yaml: Path
    output: str
    seed: ModuleType

    @property
    def auth_url(self) -> str:
        return f"http://localhost:{5000 + self.port_offset}/v3"

    def connect(
        self, cloud: str = "fedcloud-demo", **overrides: str
    ) -> openstack.connection.Connection:
        """A connection from the printed clouds.yaml, e.g. ``project_name=...``."""
        config = openstack.config.OpenStackConfig(config_files=[str(self.clouds_yaml)])
        region = config.get_one(cloud=cloud, **overrides)
        return openstack.connection.Connection(config=region)


def _demo(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "tools" / "demo"), command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="session")
def demo_cloud() -> DemoCloud:
    offset = int(os.environ.get("FEDCLOUD_TEST_PORT_OFFSET", "20000"))
    project = os.environ.get("FEDCLOUD_TEST_DEMO_PROJECT", "fedcloud-test")
    env = {**os.environ, "DEMO_PROJECT": project, "DEMO_PORT_OFFSET": str(offset)}
    started = _demo("cloud", env)
    if started.returncode != 0:
        pytest.fail(
            f"tools/demo cloud failed (is the Docker engine running and `make images` done?)\n"
            f"{started.stdout}\n{started.stderr}"
        )
    yield DemoCloud(
        project=project,
        port_offset=offset,
        clouds_yaml=ROOT / "build" / "demo" / project / "clouds.yaml",
        output=started.stdout,
        seed=load_seed_data(),
    )
    if os.environ.get("FEDCLOUD_TEST_KEEP_DEMO") != "1":
        _demo("down", env)
