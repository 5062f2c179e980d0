"""vmcatcher compatibility against the real Glance.

In: ``cloudkeeper vmcatcher-event`` run the way vmcatcher runs its
``VMCATCHER_CACHE_EVENT`` hook (the event in ``VMCATCHER_EVENT_*``), then
cloudkeeper-os applies it. Out: the configured hook runs on our image events
with the same variables.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fedcloud_cloudkeeper.backend import Backend
from fedcloud_cloudkeeper.glance import Glance, connector
from fedcloud_cloudkeeper.job import Job

from .test_glance_sync import Site, qcow2

pytestmark = pytest.mark.e2e
# Not the default ("vmcatcher"): events must land under the configured name.
VMCATCHER_LIST = "site-cache"


@pytest.fixture
def site(demo_cloud, signing, tmp_path):
    made = Site(demo_cloud, signing, tmp_path)
    made.hook_log = tmp_path / "hook.log"
    made.config = made.config.model_copy(
        update={
            "vo_projects": {"vo.demo.example": "vo-demo"},
            "event_hook": f"(env | grep ^VMCATCHER_EVENT_ | sort; echo ---) >> {made.hook_log}",
            "vmcatcher_list": VMCATCHER_LIST,
        }
    )
    config_file = tmp_path / "cloudkeeper.json"
    config = {
        "lists": [],
        "spool_dir": str(made.config.spool_dir),
        "vmcatcher_list": VMCATCHER_LIST,
    }
    config_file.write_text(json.dumps(config))
    made.config_file = config_file
    yield made
    made.remove_all()


def _event(site, kind: str, cache: Path, identifier: str, data: bytes, **extra: str):
    env = {
        **os.environ,
        "VMCATCHER_CACHE_DIR_CACHE": str(cache),
        "VMCATCHER_EVENT_TYPE": kind,
        "VMCATCHER_EVENT_DC_IDENTIFIER": identifier,
        "VMCATCHER_EVENT_DC_TITLE": f"Cached {identifier}",
        "VMCATCHER_EVENT_DC_DESCRIPTION": "from vmcatcher",
        "VMCATCHER_EVENT_HV_URI": f"https://appdb.example.org/images/{identifier}",
        "VMCATCHER_EVENT_HV_SIZE": str(len(data)),
        "VMCATCHER_EVENT_HV_VERSION": "1",
        "VMCATCHER_EVENT_HV_HYPERVISOR": "KVM",
        "VMCATCHER_EVENT_HV_FORMAT": "qcow2",
        "VMCATCHER_EVENT_SL_ARCH": "x86_64",
        "VMCATCHER_EVENT_SL_CHECKSUM_SHA512": hashlib.sha512(data).hexdigest(),
        "VMCATCHER_EVENT_SL_COMMENTS": "",
        "VMCATCHER_EVENT_SL_OS": "Linux",
        "VMCATCHER_EVENT_SL_OSVERSION": "9",
        "VMCATCHER_EVENT_AD_MPURI": f"https://appdb.example.org/store/vo/image/{identifier}:1/",
        "VMCATCHER_EVENT_IL_DC_IDENTIFIER": "9a1e7b3c-1111-4000-8000-000000000002",
        "VMCATCHER_EVENT_VO": "vo.demo.example",
        "VMCATCHER_EVENT_FILENAME": identifier,
        "VMCATCHER_EVENT_UUID_SESSION": "c3d4",
        **extra,
    }
    hook = [str(Path(sys.executable).parent / "cloudkeeper"), "--config", str(site.config_file)]
    done = subprocess.run([*hook, "vmcatcher-event"], env=env, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    glance = Glance(connector(site.config.cloud, site.config.clouds_yaml), site.tag)
    return Backend.from_config(site.config, glance).drain()


def test_vmcatcher_cache_events_add_and_expire_images_and_our_hook_sees_them(site, tmp_path):
    cache = tmp_path / "vmcatcher-cache"
    cache.mkdir()
    data = qcow2(tmp_path, 4, "vmc")
    (cache / "centos").write_bytes(data)
    drained = _event(site, "AvailablePostfix", cache, "centos", data)
    assert drained["add"] == 1 and drained["failed"] == 0
    image = site.images()[(VMCATCHER_LIST, "centos")]
    assert image.status == "active" and image.visibility == "shared"
    assert image.hash_value == hashlib.sha512(data).hexdigest()
    assert (cache / "centos").read_bytes() == data  # vmcatcher's cache is not ours to delete
    # Cleanup keeps vmcatcher_list's images; under another name they would look unsubscribed.
    glance = Glance(connector(site.config.cloud, site.config.clouds_yaml), site.tag)
    assert Job(site.config, glance).cleanup(dry_run=True).lists == []
    other = site.config.model_copy(update={"vmcatcher_list": "vmcatcher"})
    (unsubscribed,) = Job(other, glance).cleanup(dry_run=True).lists
    assert unsubscribed.name == VMCATCHER_LIST
    assert [a.verb for a in unsubscribed.actions] == ["retire"]
    hook_runs = site.hook_log.read_text().split("---\n")
    assert "VMCATCHER_EVENT_TYPE=AvailablePostfix" in hook_runs[0]
    assert "VMCATCHER_EVENT_DC_IDENTIFIER=centos" in hook_runs[0]
    assert "VMCATCHER_EVENT_VO=vo.demo.example" in hook_runs[0]

    drained = _event(site, "ExpirePostfix", cache, "centos", data)
    assert drained["retire"] == 1
    assert site.images() == {}
    assert "VMCATCHER_EVENT_TYPE=ExpirePostfix" in site.hook_log.read_text().split("---\n")[1]


def test_a_cache_event_whose_file_does_not_match_uploads_nothing(site, tmp_path):
    cache = tmp_path / "vmcatcher-cache"
    cache.mkdir()
    data = qcow2(tmp_path, 4, "vmc-bad")
    (cache / "bad").write_bytes(data[:-1] + b"!")
    drained = _event(site, "AvailablePostfix", cache, "bad", data)
    assert drained["failed"] == 1
    assert site.images() == {}


def test_events_vmcatcher_sends_that_we_do_not_act_on_queue_nothing(site, tmp_path):
    drained = _event(site, "ProcessPrefix", tmp_path, "x", b"x")
    assert drained["requests"] == 0 and drained["failed"] == 0 and drained["applied"] == 0


def test_the_event_hook_runs_on_each_image_a_list_sync_adds_or_retires(site, tmp_path):
    """event_hook, as rendered from appliance.yaml, through Backend.from_config."""
    site.publish([site.serve_image("hooked", qcow2(tmp_path, 4, "hooked"))])
    glance = Glance(connector(site.config.cloud, site.config.clouds_yaml), site.tag)
    assert not Job(site.config, glance).sync().failed
    assert Backend.from_config(site.config, glance).drain()["add"] == 1
    (added,) = site.hook_log.read_text().split("---\n")[:-1]
    image = site.images()[("demo", "hooked")]
    assert "VMCATCHER_EVENT_TYPE=AvailablePostfix" in added
    assert "VMCATCHER_EVENT_DC_IDENTIFIER=hooked" in added
    assert "VMCATCHER_EVENT_VO=vo.demo.example" in added
    assert "VMCATCHER_EVENT_IL_DC_IDENTIFIER=5b7c3f4e-0000-4000-8000-000000000001" in added
    assert f"VMCATCHER_EVENT_SL_CHECKSUM_SHA512={image.hash_value}" in added

    site.publish([])
    assert not Job(site.config, glance).sync().failed
    assert Backend.from_config(site.config, glance).drain()["retire"] == 1
    retired = site.hook_log.read_text().split("---\n")[1]
    assert "VMCATCHER_EVENT_TYPE=ExpirePostfix" in retired
    assert "VMCATCHER_EVENT_DC_IDENTIFIER=hooked" in retired
