"""cloud-info-provider 1.2.0, run for real against the demo cloud, into a real slapd.

GOCDB is the only stand-in (demo/gocdb): cloud-info-provider reaches it as
https://goc.egi.eu through HTTPS_PROXY, with a throwaway CA (tests/support/testca.py)
and trusted through REQUESTS_CA_BUNDLE. cloud-info-provider is not patched.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import docker
import docker.errors
import pytest
import swiftclient.client

from fedcloud_bdii.cli import layout_for
from fedcloud_bdii.slapd import Slapd
from fedcloud_common.services import RENDERED_DIR, SERVICES
from fedcloud_common.settings.bdii import BdiiSettings
from tests.support.testca import TestCA

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[3]
RENDERED = f"{RENDERED_DIR}/bdii"  # where the appliance renders the BDIIs' configs
STANDIN = ROOT / "demo" / "gocdb" / "gocdb_standin.py"
SITE = "BDII-TEST-SITE"
MPURI = "https://registry.egi.eu/egi_vm_images/bdii-e2e:24.04"
# The demo's GPU flavor carries these extra specs (demo/cloud/democloud/data.py).
CIP_ARGS = [
    "--os-cloud",
    "fedcloud-demo",
    "--property-flavor-gpu-number",
    "gpu_number",
    "--property-flavor-gpu-vendor",
    "gpu_vendor",
    "--property-flavor-gpu-model",
    "gpu_model",
    "--property-flavor-gpu-memory",
    "gpu_memory",
]


@pytest.fixture
def workdir(open_tmp):
    return open_tmp


@pytest.fixture
def gocdb(workdir, demo_cloud, free_port):
    """The GOCDB stand-in as an HTTPS proxy for goc.egi.eu, cert from a throwaway CA."""
    ca = TestCA(workdir / "ca", dn="/CN=FedCloud BDII test CA")  # its cert: ca/ca.pem
    goc = ca.issue("goc", "/CN=goc.egi.eu", san="DNS:goc.egi.eu")
    services = [
        {
            "primary_key": "4242G0",
            "site": SITE,
            "type": "org.openstack.nova",
            "url": demo_cloud.auth_url,
        }
    ]
    (workdir / "services.json").write_text(json.dumps(services))
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(STANDIN),
            "--services",
            str(workdir / "services.json"),
            "--cert",
            str(goc.cert),
            "--key",
            str(goc.key),
            "--proxy-port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert "listening" in proc.stdout.readline()
    yield proc, port
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def cloud_objects(demo_cloud):
    """A public and a vo-demo-only image with marketplace data, and a flavor we can change."""
    admin = demo_cloud.connect(cloud="fedcloud-demo-admin")
    vo_demo = demo_cloud.connect(project_name="vo-demo")
    meta = {
        "vmcatcher_event_ad_mpuri": MPURI,
        "os_distro": "ubuntu",
        "os_version": "24.04",
        "architecture": "x86_64",
    }
    public = admin.create_image(
        "bdii-e2e-public",
        data=b"bdii e2e public",
        disk_format="raw",
        container_format="bare",
        visibility="public",
        wait=True,
        meta=meta,
    )
    private = vo_demo.create_image(
        "bdii-e2e-private",
        data=b"bdii e2e private",
        disk_format="raw",
        container_format="bare",
        visibility="private",
        wait=True,
        meta={"os_distro": "debian"},
    )
    flavor = admin.create_flavor("bdii.e2e", ram=1024, vcpus=2, disk=5, flavorid="bdii-e2e-flavor")
    projects = {p.name: p.id for p in admin.identity.projects()}
    yield {"public": public, "private": private, "flavor": flavor, "projects": projects}
    admin.delete_image(public.id)
    admin.delete_image(private.id)
    admin.delete_flavor("bdii-e2e-flavor")


@pytest.fixture
def resource_bdii(workdir, demo_cloud, cloud_objects, gocdb, free_port):
    config = BdiiSettings(
        site=SITE,
        endpoint=demo_cloud.auth_url,
        vos={
            "vo.demo.example": cloud_objects["projects"]["vo-demo"],
            "fedcloud.egi.eu": cloud_objects["projects"]["vo-fedcloud"],
        },
        delete_delay=0,
        state_dir=workdir / "state",
        port=free_port(),
        provider=str(Path(sys.executable).parent / "cloud-info-provider-service"),
        provider_args=CIP_ARGS,
    )
    (workdir / "bdii.toml").write_text(
        _toml(
            {
                "site": config.site,
                "endpoint": config.endpoint,
                "delete_delay": 0,
                "state_dir": str(config.state_dir),
                "port": config.port,
                "provider": config.provider,
                "provider_args": config.provider_args,
                "vos": config.vos,
            }
        )
    )
    slapd = Slapd(layout_for(config))
    slapd.start()
    env = {
        **os.environ,
        "OS_CLIENT_CONFIG_FILE": str(demo_cloud.clouds_yaml),
        "HTTPS_PROXY": f"http://127.0.0.1:{gocdb[1]}",
        "NO_PROXY": "localhost,127.0.0.1",
        "REQUESTS_CA_BUNDLE": str(workdir / "ca" / "ca.pem"),
    }

    def publish() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(Path(sys.executable).parent / "fedcloud-bdii"),
                "publish",
                "-c",
                str(workdir / "bdii.toml"),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    yield config, publish
    slapd.stop()


def entries(uri: str, ldapsearch, flt: str) -> dict[str, dict[str, list[str]]]:
    """ldapsearch output as {entity name: {attribute: values}}."""
    found: dict[str, dict[str, list[str]]] = {}
    for block in ldapsearch(uri, flt).strip().split("\n\n"):
        attrs: dict[str, list[str]] = {}
        for line in block.splitlines():
            name, _, value = line.partition(": ")
            attrs.setdefault(name, []).append(value)
        found[attrs.get("GLUE2EntityName", attrs["dn"])[0]] = attrs
    return found


def test_images_and_flavors_from_the_demo_cloud_are_published(
    resource_bdii, cloud_objects, ldapsearch, demo_cloud
):
    config, publish = resource_bdii
    done = publish()
    assert done.returncode == 0, done.stdout + done.stderr
    uri = f"ldap://127.0.0.1:{config.port}"
    vo_demo = cloud_objects["projects"]["vo-demo"]
    share_of = lambda vo, project: f"{demo_cloud.auth_url}_OpenStack_v3_share_{vo}_{project}"  # noqa: E731
    demo_share = share_of("vo.demo.example", vo_demo)
    fedcloud_share = share_of("fedcloud.egi.eu", cloud_objects["projects"]["vo-fedcloud"])

    images = entries(uri, ldapsearch, "(objectClass=GLUE2CloudComputingImage)")
    public = images["bdii-e2e-public"]
    assert public["GLUE2CloudComputingImageMarketplaceURL"] == [MPURI]
    assert public["GLUE2CloudComputingImageOSName"] == ["ubuntu"]
    assert public["GLUE2CloudComputingImageOSVersion"] == ["24.04"]
    assert public["GLUE2CloudComputingImageID"] == [cloud_objects["public"].id]
    assert sorted(public["GLUE2CloudComputingImageShareForeignKey"]) == sorted(
        [demo_share, fedcloud_share]
    )
    private = images["bdii-e2e-private"]
    assert private["GLUE2CloudComputingImageShareForeignKey"] == [demo_share]
    assert private["dn"][0].endswith(f"GLUE2GroupID=cloud,GLUE2DomainID={SITE},o=glue")

    flavors = entries(uri, ldapsearch, "(objectClass=GLUE2CloudComputingInstanceType)")
    for flavor in demo_cloud.seed.FLAVORS:
        published = flavors[flavor.name]
        assert published["GLUE2CloudComputingInstanceTypeCPU"] == [str(flavor.vcpus)]
        assert published["GLUE2CloudComputingInstanceTypeRAM"] == [str(flavor.ram)]
        assert published["GLUE2CloudComputingInstanceTypeDisk"] == [str(flavor.disk)]
    # The private GPU flavor is granted to vo-demo only: one share, not two.
    assert flavors["g1.gpu-a100"]["GLUE2CloudComputingInstanceTypeShareForeignKey"] == [demo_share]
    assert len(flavors["m1.small"]["GLUE2CloudComputingInstanceTypeShareForeignKey"]) == 2

    # The GPU flavor's accelerator, from its extra specs, linked both ways.
    (gpu,) = entries(
        uri, ldapsearch, "(objectClass=GLUE2CloudComputingVirtualAccelerator)"
    ).values()
    spec = next(f for f in demo_cloud.seed.FLAVORS if f.name == "g1.gpu-a100").extra_specs
    assert gpu["GLUE2CloudComputingVirtualAcceleratorVendor"] == [spec["gpu_vendor"]]
    assert gpu["GLUE2CloudComputingVirtualAcceleratorModel"] == [spec["gpu_model"]]
    assert gpu["GLUE2CloudComputingVirtualAcceleratorNumber"] == [spec["gpu_number"]]
    gpu_flavor = flavors["g1.gpu-a100"]
    assert (
        gpu_flavor["GLUE2CloudComputingInstanceTypeCloudComputingVirtualAcceleratorForeignKey"]
        == (gpu["GLUE2CloudComputingVirtualAcceleratorID"])
    )
    assert (
        gpu["GLUE2CloudComputingVirtualAcceleratorCloudComputingInstanceTypeForeignKey"]
        == (gpu_flavor["GLUE2CloudComputingInstanceTypeID"])
    )

    shares = entries(uri, ldapsearch, "(objectClass=GLUE2CloudComputingShare)")
    assert {s["GLUE2CloudComputingShareProjectID"][0] for s in shares.values()} == set(
        config.vos.values()
    )
    policies = ldapsearch(uri, "(objectClass=GLUE2MappingPolicy)", "GLUE2PolicyRule")
    assert "GLUE2PolicyRule: VO:vo.demo.example" in policies
    services = ldapsearch(uri, "(objectClass=GLUE2CloudComputingService)", "GLUE2EntityOtherInfo")
    assert "GLUE2EntityOtherInfo: gocdb_id=4242G0" in services  # answered by the stand-in


def test_a_changed_flavor_shows_after_the_next_publish(resource_bdii, demo_cloud, ldapsearch):
    config, publish = resource_bdii
    assert publish().returncode == 0
    admin = demo_cloud.connect(cloud="fedcloud-demo-admin")
    admin.delete_flavor("bdii-e2e-flavor")
    admin.create_flavor("bdii.e2e", ram=4096, vcpus=2, disk=5, flavorid="bdii-e2e-flavor")
    done = publish()
    assert done.returncode == 0, done.stderr
    status = json.loads((config.state_dir / "status.json").read_text())
    assert status["stats"]["modified"] >= 1 and status["stats"]["added"] == 0
    flavors = entries(
        f"ldap://127.0.0.1:{config.port}",
        ldapsearch,
        "(GLUE2CloudComputingInstanceTypeID=bdii-e2e-flavor)",
    )
    assert flavors["bdii.e2e"]["GLUE2CloudComputingInstanceTypeRAM"] == ["4096"]


def test_a_provider_crash_keeps_the_old_data_and_reports_it(resource_bdii, gocdb, ldapsearch):
    config, publish = resource_bdii
    assert publish().returncode == 0
    uri = f"ldap://127.0.0.1:{config.port}"
    before = ldapsearch(uri)
    gocdb[0].terminate()  # cloud-info-provider crashes when GOCDB is unreachable
    gocdb[0].wait(timeout=10)
    done = publish()
    assert done.returncode == 1
    (summary,) = [line for line in done.stdout.splitlines() if "bdii-publish failed" in line]
    assert "-- provider run failed, last good data kept" in summary  # the reason, once
    assert ldapsearch(uri) == before
    status = json.loads((config.state_dir / "status.json").read_text())
    assert status["outcome"] == "failed" and "exit status" in status["error"]


def _toml(values: dict) -> str:
    lines, tables = [], []
    for key, value in values.items():
        if isinstance(value, dict):
            tables += [
                f"[{key}]",
                *(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in value.items()),
            ]
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines + tables) + "\n"


def _wait_for(check, containers=(), timeout: float = 180.0, every: float = 1.0):
    """Poll ``check`` until truthy; on timeout, fail with the containers' last logs."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except (subprocess.CalledProcessError, AssertionError):
            pass
        if time.monotonic() > deadline:
            logs = "\n".join(
                f"--- {c.name} ---\n{c.logs(tail=40).decode(errors='replace')}" for c in containers
            )
            raise AssertionError(f"gave up after {timeout}s waiting for {check}\n{logs}")
        time.sleep(every)


@pytest.fixture
def docker_client():
    client = docker.from_env()
    containers: list = []
    yield client, containers
    for container in containers:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)


def test_the_images_run_a_resource_and_a_site_bdii_as_non_root(
    docker_client, workdir, demo_cloud, cloud_objects, gocdb, free_port, ldapsearch
):
    """fedcloud/bdii as both roles: cloud-info-provider inside, site BDII on top.

    Each reads its config where the appliance renders it; the resource BDII
    runs on the image's own command and healthcheck, the site BDII on the
    ones compose gives it.
    """
    client, containers = docker_client
    image = f"fedcloud/bdii:{(ROOT / 'VERSION').read_text().strip()}"
    resource_port, site_port = free_port(), None
    (workdir / "resource.json").write_text(
        json.dumps(
            {
                "site": SITE,
                "endpoint": demo_cloud.auth_url,
                "port": resource_port,
                "interval": 3,
                "delete_delay": 0,
                "provider_args": ["--os-cloud", "fedcloud-demo"],
                "vos": {"vo.demo.example": cloud_objects["projects"]["vo-demo"]},
            }
        )
    )
    (workdir / "clouds.yaml").write_text(demo_cloud.clouds_yaml.read_text())
    ca_bundle = "/etc/fedcloud-appliance/demo-ca.pem"  # as outbound.ca_bundle names one
    mounts = {
        str(workdir / "resource.json"): {"bind": f"{RENDERED}/resource.json", "mode": "ro"},
        str(workdir / "clouds.yaml"): {"bind": "/etc/openstack/clouds.yaml", "mode": "ro"},
        str(workdir / "ca" / "ca.pem"): {"bind": ca_bundle, "mode": "ro"},
    }
    env = {
        "HTTPS_PROXY": f"http://127.0.0.1:{gocdb[1]}",
        "NO_PROXY": "localhost,127.0.0.1",
        "REQUESTS_CA_BUNDLE": ca_bundle,
    }
    resource = client.containers.run(
        image,
        name=f"bdii-e2e-resource-{resource_port}",
        detach=True,
        network_mode="host",
        volumes=mounts,
        environment=env,
    )
    containers.append(resource)
    uri = f"ldap://127.0.0.1:{resource_port}"
    images = _wait_for(
        lambda: (
            "bdii-e2e-public" in (out := ldapsearch(uri, "(objectClass=GLUE2CloudComputingImage)"))
            and out
        ),
        containers,
    )
    assert f"GLUE2CloudComputingImageMarketplaceURL: {MPURI}" in images
    user = resource.exec_run(["sh", "-c", "id -u; ps -o user= -C slapd || cat /proc/1/status"])
    assert user.output.decode().splitlines()[0] == str(SERVICES["bdii"].uid)  # non-root
    assert b"bdii-publish ok" in resource.logs()

    site_port = free_port()
    while site_port == resource_port:
        site_port = free_port()
    (workdir / "site.json").write_text(
        json.dumps(
            {
                "site": SITE,
                "port": site_port,
                "interval": 3,
                "delete_delay": 0,
                "resource_urls": [uri],
            }
        )
    )
    site = client.containers.run(
        image,
        ["serve", "-c", f"{RENDERED}/site.json", "--role", "site"],
        name=f"bdii-e2e-site-{site_port}",
        detach=True,
        network_mode="host",
        volumes={str(workdir / "site.json"): {"bind": f"{RENDERED}/site.json", "mode": "ro"}},
        healthcheck={"test": ["CMD", "fedcloud-bdii", "health", "-c", f"{RENDERED}/site.json"]},
    )
    containers.append(site)
    site_uri = f"ldap://127.0.0.1:{site_port}"
    flavors = _wait_for(
        lambda: (
            "m1.small"
            in (out := ldapsearch(site_uri, "(objectClass=GLUE2CloudComputingInstanceType)"))
            and out
        ),
        containers,
    )
    assert "GLUE2CloudComputingInstanceTypeRAM: 2048" in flavors
    assert f"GLUE2DomainID={SITE},o=glue" in flavors
    denied = subprocess.run(
        ["ldapmodify", "-x", "-H", site_uri],
        input=f"dn: GLUE2DomainID={SITE},o=glue\nchangetype: modify\n"
        "replace: GLUE2EntityName\nGLUE2EntityName: x\n",
        capture_output=True,
        text=True,
    )
    assert denied.returncode == 8, denied.stderr
    for container in (resource, site):
        health = _wait_for(
            lambda c=container: (
                client.api.inspect_container(c.id)["State"]["Health"]["Status"] == "healthy"
            ),
            containers,
        )
        assert health, container.name


# -- issue 18: the JSON in the demo cloud's Swift, and health from probes --


@pytest.fixture
def probed_bdii(workdir, demo_cloud, cloud_objects, gocdb, free_port):
    """A resource BDII with the appliance's credentials (so it probes) and a Swift store."""
    container = f"cloud-info-e2e-{free_port()}"
    settings = {
        "site": SITE,
        "endpoint": demo_cloud.auth_url,
        "delete_delay": 0,
        "state_dir": str(workdir / "state"),
        "port": free_port(),
        "provider": str(Path(sys.executable).parent / "cloud-info-provider-service"),
        "provider_args": CIP_ARGS[2:],  # the cloud comes from openstack below
        "provider_timeout": 20,
        "vos": {"vo.demo.example": cloud_objects["projects"]["vo-demo"]},
        "openstack": {
            "cloud": "fedcloud-demo",
            "clouds_yaml": str(demo_cloud.clouds_yaml),
            "timeout_s": 5,
        },
        "object_store": {"container": container},
    }
    (workdir / "bdii.toml").write_text(_toml(settings))
    config = BdiiSettings.model_validate(settings)
    slapd = Slapd(layout_for(config))
    slapd.start()
    env = {
        **os.environ,
        "HTTPS_PROXY": f"http://127.0.0.1:{gocdb[1]}",
        "NO_PROXY": "localhost,127.0.0.1",
        "REQUESTS_CA_BUNDLE": str(workdir / "ca" / "ca.pem"),
    }

    def publish(toml: dict | None = None) -> dict:
        if toml:
            (workdir / "bdii.toml").write_text(_toml(settings | toml))
        subprocess.run(
            [str(Path(sys.executable).parent / "fedcloud-bdii"), "publish", "-c",
             str(workdir / "bdii.toml")],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        return json.loads((config.state_dir / "status.json").read_text())

    swift = swiftclient.client.Connection(session=demo_cloud.connect().session)
    yield config, publish, swift, container
    slapd.stop()
    with contextlib.suppress(swiftclient.client.ClientException):
        for obj in swift.get_container(container)[1]:
            swift.delete_object(container, obj["name"])
        swift.delete_container(container)


def _published(swift, container: str) -> tuple[dict, dict]:
    """(headers, document) of the site's object, read anonymously as cloud-info-api does."""
    listing = f"{swift.get_auth()[0]}/{container}?format=json"
    with urllib.request.urlopen(listing, timeout=10) as response:  # no token
        names = [obj["name"] for obj in json.load(response)]
    assert names == [f"{SITE}/cloud-info.json"]  # no temporary object left behind
    headers, body = swift.get_object(container, names[0])
    return headers, json.loads(body)


def test_the_json_is_in_swift_after_a_publish_and_not_uploaded_again_unchanged(
    probed_bdii, cloud_objects
):
    _config, publish, swift, container = probed_bdii
    status = publish()
    assert status["outcome"] == "ok", status
    assert status["object_store"]["outcome"] == "uploaded"
    headers, document = _published(swift, container)
    images = {image["Name"] for image in document["CloudComputingImage"]}
    assert {"bdii-e2e-public", "bdii-e2e-private"} <= images
    (endpoint,) = document["CloudComputingEndpoint"]
    assert endpoint["HealthState"] == "ok"
    assert endpoint["HealthStateInfo"] == "Keystone, Nova and Glance answer and authenticate"

    # The next provider run restamps every object and changes nothing else.
    status = publish()
    assert status["outcome"] == "ok" and status["object_store"]["outcome"] == "unchanged"
    again, _ = _published(swift, container)
    assert again["x-timestamp"] == headers["x-timestamp"]  # not written again


def test_a_store_that_is_down_keeps_its_last_good_copy_while_the_bdii_updates(
    probed_bdii, demo_cloud, ldapsearch
):
    config, publish, swift, container = probed_bdii
    assert publish()["object_store"]["outcome"] == "uploaded"
    headers, _ = _published(swift, container)
    admin = demo_cloud.connect(cloud="fedcloud-demo-admin")
    admin.delete_flavor("bdii-e2e-flavor")
    admin.create_flavor("bdii.e2e", ram=6144, vcpus=2, disk=5, flavorid="bdii-e2e-flavor")
    # Nothing answers at the store's address any more.
    down = {"object_store": {"container": container, "storage_url": "http://127.0.0.1:9/v1/AUTH_x"}}
    status = publish(down)
    assert status["outcome"] == "partial"
    assert status["object_store"]["outcome"] == "failed"
    assert "object store" in status["error"] and "last good copy stays" in status["error"]
    flavor = ldapsearch(
        f"ldap://127.0.0.1:{config.port}", "(GLUE2CloudComputingInstanceTypeID=bdii-e2e-flavor)"
    )
    assert "GLUE2CloudComputingInstanceTypeRAM: 6144" in flavor  # the BDII did update
    kept, document = _published(swift, container)
    assert kept["etag"] == headers["etag"]
    (flavor_json,) = [f for f in document["CloudComputingInstanceType"] if f["Name"] == "bdii.e2e"]
    assert flavor_json["RAM"] == 1024  # the last good copy, untouched
    # The store is back: the change goes up on the next cycle.
    status = publish({"object_store": {"container": container}})
    assert status["outcome"] == "ok" and status["object_store"]["outcome"] == "uploaded"


@contextlib.contextmanager
def _frozen(demo_cloud, process: str):
    """Stop (SIGSTOP) one service of the demo cloud: it accepts connections, never answers."""
    client = docker.from_env()
    (cloud,) = client.containers.list(
        filters={
            "label": [
                f"com.docker.compose.project={demo_cloud.project}",
                "com.docker.compose.service=democloud",
            ]
        }
    )
    # Every process whose command line names it, except this shell (whose does too).
    signal_all = (
        "for p in /proc/[0-9]*; do [ ${{p#/proc/}} = $$ ] && continue; "
        "grep -qa {name} $p/cmdline 2>/dev/null && kill -{sig} ${{p#/proc/}}; done; true"
    )
    cloud.exec_run(["sh", "-c", signal_all.format(name=process, sig="STOP")])
    try:
        yield
    finally:
        cloud.exec_run(["sh", "-c", signal_all.format(name=process, sig="CONT")])


def test_a_degraded_endpoint_shows_as_degraded_in_ldap_and_in_the_json(
    probed_bdii, demo_cloud, ldapsearch
):
    config, publish, swift, container = probed_bdii
    assert publish()["outcome"] == "ok"
    with _frozen(demo_cloud, "uwsgi-glance"):
        status = publish()
    assert status["outcome"] == "partial", status
    assert "HealthState warning" in status["error"]  # published from the last good data
    endpoint = ldapsearch(
        f"ldap://127.0.0.1:{config.port}",
        "(objectClass=GLUE2CloudComputingEndpoint)",
        "GLUE2EndpointHealthState",
        "GLUE2EndpointHealthStateInfo",
    )
    assert "GLUE2EndpointHealthState: warning" in endpoint
    assert "GLUE2EndpointHealthStateInfo: Glance does not answer" in endpoint
    _, document = _published(swift, container)
    (published,) = document["CloudComputingEndpoint"]
    assert published["HealthState"] == "warning"
    assert published["HealthStateInfo"].startswith("Glance does not answer")
    # Glance is back: so is "ok", in both.
    assert publish()["outcome"] == "ok"
    assert "GLUE2EndpointHealthState: ok" in ldapsearch(
        f"ldap://127.0.0.1:{config.port}", "(objectClass=GLUE2CloudComputingEndpoint)"
    )
    assert _published(swift, container)[1]["CloudComputingEndpoint"][0]["HealthState"] == "ok"


def test_the_json_goes_to_an_s3_compatible_store_when_the_kind_is_s3(
    probed_bdii, demo_cloud, workdir
):
    """The demo Swift's s3api, with EC2 credentials of the appliance's own project."""
    _config, publish, swift, container = probed_bdii
    user = demo_cloud.connect()
    created = user.identity.post(
        f"/users/{user.current_user_id}/credentials/OS-EC2",
        json={"tenant_id": user.current_project_id},
    )
    assert created.status_code == 201, created.text
    credential = created.json()["credential"]
    secret = workdir / "s3-secret"
    secret.write_text(credential["secret"] + "\n")
    secret.chmod(0o600)
    s3 = {
        "object_store": {
            "kind": "s3",
            "container": container,
            "endpoint_url": f"http://localhost:{8880 + demo_cloud.port_offset}",
            "access_key_id": credential["access"],
            "secret_access_key_file": str(secret),
        }
    }
    try:
        status = publish(s3)
        assert status["outcome"] == "ok", status
        assert status["object_store"]["outcome"] == "uploaded"
        assert status["object_store"]["url"].startswith("http://localhost:")
        # The bucket is the project's Swift container: read it as cloud-info-api does.
        _, document = _published(swift, container)
        assert document["CloudComputingEndpoint"][0]["HealthState"] == "ok"
        assert publish(s3)["object_store"]["outcome"] == "unchanged"
    finally:
        user.identity.delete(
            f"/users/{user.current_user_id}/credentials/OS-EC2/{credential['access']}"
        )
