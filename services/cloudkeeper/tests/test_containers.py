"""The image as shipped: the backend container serves, the job container syncs.

Both run from fedcloud/cloudkeeper as the unprivileged user, share the spool,
cache and state through mounts (as the appliance's volumes do), read their
config where the appliance renders it (the backend by the image's default,
the job by --config) and reach the demo cloud and the HTTPS list server on
the host network.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import docker
import pytest

from fedcloud_common.services import RENDERED_DIR

from .conftest import image_entry, image_list
from .test_glance_sync import qcow2

pytestmark = pytest.mark.e2e

IMAGE = f"fedcloud/cloudkeeper:{(Path(__file__).parents[3] / 'VERSION').read_text().strip()}"


@pytest.fixture(scope="module")
def engine():
    client = docker.from_env()
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"{IMAGE} is missing: run `make images` (or tools/build-image cloudkeeper)")
    return client


def test_the_backend_container_applies_what_the_job_container_hands_over(
    engine, demo_cloud, signing, tmp_path
):
    tag = f"ck-test-{uuid.uuid4().hex[:8]}"
    shared = {}
    for name in ("spool", "cache", "etc"):
        shared[name] = tmp_path / name
        shared[name].mkdir()
        shared[name].chmod(0o777)  # the containers' user owns nothing on the host
    data = qcow2(tmp_path, 4, tag)
    signing.server.files[f"/images/{tag}"] = data
    signing.publish(f"/lists/{tag}", image_list([image_entry(tag, data, signing.server.url)]))
    (shared["etc"] / "clouds.yaml").write_text(demo_cloud.clouds_yaml.read_text())
    source = signing.source("demo", f"/lists/{tag}", project="vo-demo")
    (shared["etc"] / "cloudkeeper.json").write_text(
        json.dumps(
            {
                "lists": [
                    {
                        "name": "demo",
                        "url": source.url,
                        "endorser_dn": source.endorser_dn,
                        "endorser_ca": source.endorser_ca,
                        "project": "vo-demo",
                    }
                ],
                "cloud": "fedcloud-demo",
                "clouds_yaml": f"{RENDERED_DIR}/clouds.yaml",
                "https_verify": "/etc/grid-security/certificates",
                "tag": tag,
                "reserve_bytes": 0,
            }
        )
    )
    volumes = {
        str(shared["etc"]): {"bind": RENDERED_DIR, "mode": "ro"},
        str(signing.ca_dir): {"bind": "/etc/grid-security/certificates", "mode": "ro"},
        str(shared["spool"]): {"bind": "/var/spool/cloudkeeper", "mode": "rw"},
        str(shared["cache"]): {"bind": "/image_data", "mode": "rw"},
    }
    backend = engine.containers.run(
        IMAGE,
        ["cloudkeeper-os", "--verbose", "serve", "--poll", "1"],
        name=f"ck-backend-{tag}",
        network_mode="host",
        volumes=volumes,
        detach=True,
    )
    try:
        job = engine.containers.run(
            IMAGE,
            ["fedcloud-cloudkeeper", "sync", "--config", f"{RENDERED_DIR}/cloudkeeper.json"],
            name=f"ck-job-{tag}",
            network_mode="host",
            volumes=volumes,
            detach=True,
        )
        result = job.wait(timeout=300)
        output = job.logs(stderr=False).decode()
        job.remove()
        assert result["StatusCode"] == 0, output
        assert output.strip().splitlines()[-1].startswith("cloudkeeper-sync ok ")
        admin = demo_cloud.connect(cloud="fedcloud-demo-admin")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            found = [i for i in admin.image.images(tag=tag) if i.status == "active"]
            backend.reload()
            if found or backend.status != "running":
                break
            time.sleep(1)
        assert len(found) == 1, backend.logs().decode()
        assert found[0].visibility == "shared"
        assert engine.api.inspect_container(backend.id)["Config"]["User"] == "cloudkeeper"
        # What the compose healthcheck reads: the backend's poll loop is alive.
        assert (shared["spool"] / "state" / "status" / "backend.heartbeat").exists()
    finally:
        backend.stop(timeout=10)
        backend.remove(force=True)
        admin = demo_cloud.connect(cloud="fedcloud-demo-admin")
        for image in admin.image.images(tag=tag):
            admin.image.delete_image(image.id)
