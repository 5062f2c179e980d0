"""bench-regions: multi-region image sync, parallel against sequential.

20 images of different sizes, 1 GiB in all, in the demo cloud's RegionOne
(the master), synced to three target regions in two other Keystones and
one more Glance: RegionTwo (same Keystone), the second demo cloud, and a
third cloud started here from the same image. The same sync runs twice in
one session, first one region at a time (the baseline, GlanceSync's
default), then ``--parallel`` with parallelism 3, each time into empty
targets, each as its own ``fedcloud-glancesync`` process whose peak RSS is
taken from the kernel (wait4).

The last line is machine-readable:
``bench-regions parallel_speedup=<x> master_read_ratio=<y> peak_rss_mb=<z>``
(the ratio is bytes read from the master / bytes of the images synced: 1.0
when each image is read once however many regions take it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import openstack

ROOT = Path(__file__).resolve().parents[2]
PROJECT = os.environ.get("FEDCLOUD_BENCH_DEMO_PROJECT", "fedcloud-bench-regions")
OFFSET = int(os.environ.get("FEDCLOUD_BENCH_PORT_OFFSET", "22000"))
CLOUD_C_OFFSET = OFFSET + 20  # the third cloud's ports: 5020 + offset, 9312 + offset
CLI = str(Path(sys.executable).parent / "fedcloud-glancesync")
PREFIX = "bench-"


def demo(command: str) -> None:
    env = {**os.environ, "DEMO_PROJECT": PROJECT, "DEMO_PORT_OFFSET": str(OFFSET)}
    subprocess.run([str(ROOT / "tools" / "demo"), command], env=env, check=True,
                   capture_output=True, timeout=300)  # fmt: skip


def start_cloud_c() -> str:
    """A third cloud (Keystone and Glance only), like the demo's second one."""
    name = f"{PROJECT}-cloudc"
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    tag = (ROOT / "VERSION").read_text().strip()
    subprocess.run(
        ["docker", "run", "-d", "--name", name,
         "-e", "DEMOCLOUD_SERVICES=keystone glance", "-e", "DEMOCLOUD_OWN_KEYS=1",
         "-e", "DEMO_CLOUD_HOST=localhost", "-e", f"DEMO_CLOUD_PORT_OFFSET={CLOUD_C_OFFSET}",
         "-p", f"127.0.0.1:{5000 + CLOUD_C_OFFSET}:5000",
         "-p", f"127.0.0.1:{9292 + CLOUD_C_OFFSET}:9292",
         f"fedcloud/democloud:{tag}"],
        check=True, capture_output=True,
    )  # fmt: skip
    for _ in range(120):
        state = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Health.Status}}", name],
            capture_output=True, text=True, check=False,
        ).stdout.strip()  # fmt: skip
        if state == "healthy":
            return name
        time.sleep(1)
    raise SystemExit(f"bench-regions: {name} did not become healthy")


def connect(port_offset: int, region: str = "RegionOne") -> openstack.connection.Connection:
    return openstack.connect(
        auth_url=f"http://localhost:{5000 + port_offset}/v3",
        username="fedcloud",
        password="fedcloudpass",
        project_name="fedcloud-ops",
        user_domain_name="Default",
        project_domain_name="Default",
        region_name=region,
    )


def clean(conn: openstack.connection.Connection) -> None:
    for body in conn.image.get("/images", params={"limit": 1000}).json()["images"]:
        if body["name"].startswith(PREFIX) and body["owner"] == conn.current_project_id:
            conn.image.delete(f"/images/{body['id']}")


def sizes(total: int, count: int) -> list[int]:
    """``count`` sizes growing linearly (1 : count), summing to ``total``."""
    weights = list(range(1, count + 1))
    out = [total * w // sum(weights) for w in weights]
    out[-1] += total - sum(out)
    return out


def upload(conn: openstack.connection.Connection, name: str, size: int) -> None:
    reply = conn.image.post("/images", json={
        "name": name, "disk_format": "raw", "container_format": "bare",
        "visibility": "public", "bench": "1"})  # fmt: skip
    image_id = reply.json()["id"]
    with tempfile.TemporaryFile() as data:
        block = os.urandom(1024 * 1024)
        left = size
        while left > 0:
            data.write(block[: min(left, len(block))])
            left -= len(block)
        data.seek(0)
        conn.image.put(f"/images/{image_id}/file", data=data,
                       headers={"Content-Type": "application/octet-stream"})  # fmt: skip


def settings(state: Path, password: Path) -> Path:
    def creds(offset: int) -> dict[str, object]:
        return {"auth_url": f"http://localhost:{5000 + offset}/v3", "username": "fedcloud",
                "password_file": str(password), "project_name": "fedcloud-ops"}  # fmt: skip

    policy = {"selection": {"metadata_set": ["bench"]}}
    body = {
        "master_region": "RegionOne",
        "master": creds(OFFSET),
        "targets": {
            "master": {"openstack": creds(OFFSET), "regions": ["RegionTwo"], "policy": policy},
            "cloudb": {"openstack": creds(OFFSET + 10), "policy": policy},
            "cloudc": {"openstack": creds(CLOUD_C_OFFSET), "policy": policy},
        },
        "parallelism": 3,
        "state_dir": str(state),
    }
    path = state / "glancesync.json"
    path.write_text(json.dumps(body))
    return path


def run_sync(config: Path, parallel: bool) -> tuple[float, float, dict[str, object]]:
    """Wall seconds, peak RSS (MiB) and status.json of one sync process."""
    args = [CLI, "-c", str(config), "sync"] + (["--parallel"] if parallel else [])
    started = time.monotonic()
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.monotonic() - started
    out = process.stdout.read().decode() if process.stdout else ""
    err = process.stderr.read().decode() if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bench-regions: sync failed:\n{out}\n{err}")
    print(f"  {out.strip().splitlines()[-1]}")
    record = json.loads((config.parent / "status.json").read_text())
    return elapsed, usage.ru_maxrss / 1024, record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--total-mib", type=int, default=1024)
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="leave the clouds running")
    args = parser.parse_args()
    total = args.total_mib * 1024 * 1024
    print(f"bench-regions: starting the demo cloud ({PROJECT}) and a third cloud...")
    demo("cloud")
    cloud_c = start_cloud_c()
    try:
        master = connect(OFFSET)
        targets = [connect(OFFSET, "RegionTwo"), connect(OFFSET + 10), connect(CLOUD_C_OFFSET)]
        for conn in [master, *targets]:
            clean(conn)
        print(f"bench-regions: {args.images} images, {args.total_mib} MiB in all, into the master")
        for index, size in enumerate(sizes(total, args.images)):
            upload(master, f"{PREFIX}{index:02d}", size)
        with tempfile.TemporaryDirectory() as scratch:
            state = Path(scratch)
            password = state / "password"
            password.write_text("fedcloudpass\n")
            password.chmod(0o600)
            config = settings(state, password)
            print("bench-regions: sequential (one region at a time, the baseline)")
            sequential, rss_seq, _ = run_sync(config, parallel=False)
            for conn in targets:
                clean(conn)
            print("bench-regions: parallel (3 regions at a time)")
            parallel, rss_par, record = run_sync(config, parallel=True)
        read = int(record["master_bytes_read"])
        synced = int(record["synced_image_bytes"])
        print(f"  sequential {sequential:.1f} s, parallel {parallel:.1f} s; "
              f"master read {read} B for {synced} B of images; "
              f"peak RSS {rss_seq:.0f} MiB sequential, {rss_par:.0f} MiB parallel")  # fmt: skip
        peak = max(rss_seq, rss_par)
        print(f"bench-regions parallel_speedup={sequential / parallel:.2f} "
              f"master_read_ratio={read / synced:.2f} peak_rss_mb={peak:.0f}")  # fmt: skip
        for conn in [master, *targets]:
            clean(conn)
    finally:
        if not args.keep:
            subprocess.run(["docker", "rm", "-f", cloud_c], capture_output=True, check=False)
            demo("down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
