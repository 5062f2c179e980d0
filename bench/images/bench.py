"""bench-images: image replication against floors measured in the same run.

1. A 2 GiB image served over local HTTP to ACTIVE in the demo cloud's Glance.
   Floor: ``curl -o`` to disk, then ``sha512sum``, then a bare ``curl -T``
   PUT to Glance until active, one after another. Ours: the job (fetch and
   verify the signed list, download hashing as bytes arrive) then the
   backend (create, upload, active). Target: ratio <= 1.0.
2. A no-change re-sync of a 500-image list: wall time, Glance API calls and
   Keystone tokens issued, counted on the wire (requests response hooks on
   the SDK's session). Target: < 3 s, constant calls, one token.

The last line is machine-readable:
``bench-images floor_ratio=<x> noop_resync_s=<y> glance_list_calls=<n>``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from fedcloud_cloudkeeper.backend import Backend  # noqa: E402
from fedcloud_cloudkeeper.config import Config  # noqa: E402
from fedcloud_cloudkeeper.glance import Glance, connector  # noqa: E402
from fedcloud_cloudkeeper.job import Job  # noqa: E402
from fedcloud_cloudkeeper.spool import Spool  # noqa: E402

PROJECT = os.environ.get("FEDCLOUD_BENCH_DEMO_PROJECT", "fedcloud-test-images")
OFFSET = int(os.environ.get("FEDCLOUD_BENCH_PORT_OFFSET", "21000"))
HTTP_PORT = 40901


def _helpers():
    """The tests' CA, signer and HTTPS list server (one implementation, not a copy)."""
    path = ROOT / "services" / "cloudkeeper" / "tests" / "conftest.py"
    spec = importlib.util.spec_from_file_location("ck_bench_helpers", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _demo_up() -> Path:
    env = {**os.environ, "DEMO_PROJECT": PROJECT, "DEMO_PORT_OFFSET": str(OFFSET)}
    subprocess.run(
        [str(ROOT / "tools" / "demo"), "up"], env=env, check=True, capture_output=True, timeout=300
    )
    return ROOT / "build" / "demo" / PROJECT / "clouds.yaml"


class Wire:
    """Counts what the SDK sends: Glance calls by kind, Keystone tokens."""

    def __init__(self, clouds_yaml: Path) -> None:
        self.counts: Counter[str] = Counter()
        self.base = connector("fedcloud-demo", clouds_yaml)

    def connect(self, project):
        conn = self.base(project)
        conn.session.session.hooks["response"].append(self._seen)
        return conn

    def _seen(self, response, *args, **kwargs):
        url = urllib.parse.urlsplit(response.request.url)
        if url.path.endswith("/auth/tokens") and response.request.method == "POST":
            self.counts["tokens"] += 1
        elif url.port == 9292 + OFFSET:
            self.counts["glance"] += 1
            if response.request.method == "GET" and url.path.rstrip("/").endswith("/images"):
                self.counts["glance_list"] += 1


def _config(tmp: Path, helpers, signing, clouds_yaml: Path, path: str, tag: str) -> Config:
    return Config(
        lists=(signing.source("bench", path),),
        ca_path=signing.ca_dir,
        state_dir=tmp / "state",
        cache_dir=tmp / "cache",
        spool_dir=tmp / "spool",
        cloud="fedcloud-demo",
        clouds_yaml=clouds_yaml,
        https_verify=str(signing.ca_dir),
        tag=tag,
        reserve_bytes=0,
        accepted_formats=("raw", "qcow2"),
    )


def _sync(config: Config, connect) -> float:
    started = time.monotonic()
    glance = Glance(connect, config.tag)
    report = Job(config, glance).sync()
    drained = Backend(glance, Spool(config.spool_dir), config.state_dir).drain()
    if report.failed or drained["failed"]:
        raise SystemExit(f"bench-images: sync failed: {report} {drained}")
    return time.monotonic() - started


def _floor(big: Path, url: str, clouds_yaml: Path, tmp: Path) -> float:
    import openstack

    conn = openstack.connection.Connection(
        config=openstack.config.OpenStackConfig(config_files=[str(clouds_yaml)]).get_one(
            cloud="fedcloud-demo"
        )
    )
    token = conn.session.get_token()
    glance = conn.image.get_endpoint().rstrip("/")
    if not glance.endswith("/v2"):
        glance += "/v2"
    body = {"name": "bench-floor", "disk_format": "raw", "container_format": "bare"}
    image = conn.image.post("/images", json=body).json()["id"]
    target = tmp / "floor.raw"
    started = time.monotonic()
    subprocess.run(["curl", "-sSf", "-o", str(target), url], check=True)
    subprocess.run(["sha512sum", str(target)], check=True, capture_output=True)
    subprocess.run(
        [
            "curl",
            "-sSf",
            "-X",
            "PUT",
            "-T",
            str(target),
            "-H",
            "Expect:",
            "-H",
            f"X-Auth-Token: {token}",
            "-H",
            "Content-Type: application/octet-stream",
            f"{glance}/images/{image}/file",
        ],
        check=True,
    )
    while conn.image.get_image(image).status != "active":
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    target.unlink()
    conn.image.delete_image(image)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--images", type=int, default=500)
    args = parser.parse_args()
    helpers = _helpers()
    clouds_yaml = _demo_up()
    with tempfile.TemporaryDirectory(prefix="ck-bench-", dir=os.environ.get("TMPDIR")) as name:
        tmp = Path(name)
        signing = helpers.Signing(tmp / "signing")
        served = tmp / "served"
        served.mkdir()
        big = served / "big.raw"
        subprocess.run(
            ["head", "-c", f"{args.size_mib}M", "/dev/urandom"], stdout=big.open("wb"), check=True
        )
        http = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                str(HTTP_PORT),
                "--directory",
                str(served),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(1)
            url = f"http://127.0.0.1:{HTTP_PORT}/big.raw"
            print(f"bench-images: {args.size_mib} MiB image, floor (curl, sha512sum, curl -T)...")
            floor = _floor(big, url, clouds_yaml, tmp)
            print(f"  floor: {floor:.1f}s")

            wire = Wire(clouds_yaml)
            tag = f"ck-bench-{os.getpid()}"
            sha = subprocess.run(
                ["sha512sum", str(big)], check=True, capture_output=True, text=True
            ).stdout.split()[0]
            entry = helpers.image_entry("big", b"", "http://unused")
            entry["hv:image"].update(
                {"hv:uri": url, "hv:size": str(big.stat().st_size), "sl:checksum:sha512": sha}
            )
            signing.publish("/lists/big", helpers.image_list([entry], vo=None))
            config = _config(tmp / "big", helpers, signing, clouds_yaml, "/lists/big", tag)
            ours = _sync(config, wire.connect)
            print(f"  ours:  {ours:.1f}s (job download+hash, backend upload to active)")
            ratio = ours / floor
            _delete_tagged(wire.base(None), tag)
            big.unlink()

            print(f"bench-images: no-change re-sync of a {args.images}-image list...")
            entries = []
            for index in range(args.images):
                data = f"image {index}\n".encode() * 64
                name = f"small-{index:04d}"
                (served / name).write_bytes(data)
                entry = helpers.image_entry(name, data, "http://unused")
                entry["hv:image"]["hv:uri"] = f"http://127.0.0.1:{HTTP_PORT}/{name}"
                entries.append(entry)
            signing.publish("/lists/many", helpers.image_list(entries, vo=None))
            tag_many = f"{tag}-many"
            many = _config(tmp / "many", helpers, signing, clouds_yaml, "/lists/many", tag_many)
            installed = _sync(many, wire.base)
            print(f"  first sync (install {args.images} images): {installed:.1f}s")
            wire.counts.clear()
            noop = _sync(many, wire.connect)
            calls = dict(wire.counts)
            print(f"  re-sync: {noop:.2f}s, wire: {calls}")
            _delete_tagged(wire.base(None), tag_many)
        finally:
            http.terminate()
            http.wait()
            signing.server.stop()
    print(
        f"bench-images: floor {floor:.1f}s, ours {ours:.1f}s, ratio {ratio:.2f} (target <= 1.0); "
        f"re-sync {noop:.2f}s (target < 3), tokens {calls.get('tokens', 0)} (target 1)"
    )
    print(
        f"bench-images floor_ratio={ratio:.2f} noop_resync_s={noop:.2f} "
        f"glance_list_calls={calls.get('glance_list', 0)}"
    )
    return 0


def _delete_tagged(conn, tag: str) -> None:
    for image in list(conn.image.images(tag=tag, limit=1000)):
        conn.image.delete_image(image.id)


if __name__ == "__main__":
    sys.exit(main())
