"""The demo cloud answers the appliance's calls with the seeded cloud.

Every later service test relies on this: real Keystone, Glance and nova-api
reached through openstacksdk with the clouds.yaml that `make demo` prints.
"""

from __future__ import annotations

import datetime
import hashlib
import subprocess

import openstack
import pytest

pytestmark = pytest.mark.e2e

WINDOW = (datetime.datetime(2026, 1, 1), datetime.datetime(2026, 7, 1))


@pytest.fixture(scope="module")
def appliance(demo_cloud):
    return demo_cloud.connect()


@pytest.fixture(scope="module")
def project_ids(demo_cloud):
    admin = demo_cloud.connect("fedcloud-demo-admin")
    return {p.name: p.id for p in admin.identity.projects()}


def test_make_demo_prints_a_working_clouds_yaml(demo_cloud):
    assert str(demo_cloud.clouds_yaml) in demo_cloud.output
    assert f"http://localhost:{5000 + demo_cloud.port_offset}/v3" in demo_cloud.output


def test_the_appliance_user_authenticates_with_the_printed_snippet(appliance, demo_cloud):
    assert appliance.session.get_auth_headers()["X-Auth-Token"]
    me = appliance.identity.get_user(appliance.current_user_id)
    assert me.name == "fedcloud"
    assert appliance.current_project.name == "fedcloud-ops"


def test_vo_projects_carry_their_vo_property_and_tag(demo_cloud):
    admin = demo_cloud.connect("fedcloud-demo-admin")
    expected = {p.name: p.vo for p in demo_cloud.seed.PROJECTS if p.vo}
    assert len(expected) >= 2
    for name, vo in expected.items():
        body = admin.identity.get(f"/projects/{admin.identity.find_project(name).id}").json()
        assert body["project"][demo_cloud.seed.VO_PROPERTY] == vo
        assert demo_cloud.seed.ACCOUNTED_TAG in body["project"]["tags"]


def test_uploads_a_real_qcow2_and_sets_custom_properties(demo_cloud, tmp_path):
    disk = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True)
    data = disk.read_bytes()
    vo_project = demo_cloud.connect(project_name="vo-demo")
    image = vo_project.image.create_image(
        name="e2e-upload",
        filename=str(disk),
        disk_format="qcow2",
        container_format="bare",
        wait=True,
    )
    try:
        image = vo_project.image.get_image(image.id)
        assert image.status == "active"
        assert image.disk_format == "qcow2"
        assert image.size == len(data)
        assert image.virtual_size == 64 * 1024 * 1024
        assert image.hash_algo == "sha512"
        assert image.hash_value == hashlib.sha512(data).hexdigest()

        vo_project.image.update_image_properties(
            image=image,
            APPLIANCE_MPURI="https://appdb.example/store/vo/image/e2e:1/",
            vmcatcher_event_dc_title="E2E image",
        )
        fetched = vo_project.image.get_image(image.id)
        assert (
            fetched.properties["APPLIANCE_MPURI"] == "https://appdb.example/store/vo/image/e2e:1/"
        )
        assert fetched.properties["vmcatcher_event_dc_title"] == "E2E image"
        assert fetched.owner == vo_project.current_project_id

        downloaded = vo_project.image.download_image(fetched, stream=False).content
        assert downloaded == data
    finally:
        vo_project.image.delete_image(image.id, ignore_missing=True)


def test_lists_every_flavor_with_the_private_one_and_its_extra_specs(appliance, demo_cloud):
    flavors = {f.name: f for f in appliance.compute.flavors(is_public=None)}
    seeded = {f.name: f for f in demo_cloud.seed.FLAVORS}
    assert set(flavors) == set(seeded)
    for name, want in seeded.items():
        got = flavors[name]
        assert (got.vcpus, got.ram, got.disk, got.is_public) == (
            want.vcpus,
            want.ram,
            want.disk,
            want.is_public,
        )
        specs = appliance.compute.fetch_flavor_extra_specs(got).extra_specs
        assert specs == want.extra_specs
    private = next(f for f in seeded.values() if not f.is_public)
    # A member of a project without access does not see the private flavor.
    outsider = demo_cloud.connect(project_name="vo-fedcloud")
    assert private.name not in {f.name for f in outsider.compute.flavors()}


def test_lists_running_servers_of_all_projects(appliance, demo_cloud, project_ids):
    servers = {s.name: s for s in appliance.compute.servers(all_projects=True)}
    running = {s.name: s for s in demo_cloud.seed.SERVERS if s.terminated_at is None}
    assert set(servers) == set(running)
    for name, want in running.items():
        assert servers[name].project_id == project_ids[want.project]
        assert servers[name].flavor["original_name"] == want.flavor
        assert servers[name].status == "ACTIVE"


def test_a_vo_member_cannot_list_other_projects_servers(demo_cloud):
    member = openstack.connect(
        auth_url=demo_cloud.auth_url,
        username="alice",
        password="alicepass",
        project_name="vo-demo",
        user_domain_name="Default",
        project_domain_name="Default",
    )
    with pytest.raises(openstack.exceptions.ForbiddenException):
        list(member.compute.servers(all_projects=True))


def _expected_usage(seed, project: str) -> tuple[float, float, int]:
    """vCPU-hours, MB-hours and server count in WINDOW, as Nova computes them."""
    start, end = (t.replace(tzinfo=datetime.UTC) for t in WINDOW)
    flavors = {f.name: f for f in seed.FLAVORS}
    vcpu_h = mb_h = 0.0
    count = 0
    for server in seed.SERVERS:
        if server.project != project:
            continue
        stop = min(end, server.terminated_at or end)
        hours = max(0.0, (stop - max(start, server.launched_at)).total_seconds() / 3600)
        vcpu_h += hours * flavors[server.flavor].vcpus
        mb_h += hours * flavors[server.flavor].ram
        count += 1
    return vcpu_h, mb_h, count


def test_reads_simple_tenant_usage_matching_the_seeded_history(appliance, demo_cloud, project_ids):
    usages = {
        u.project_id: u
        for u in appliance.compute.usages(start=WINDOW[0], end=WINDOW[1], detailed=1)
    }
    for project in (p.name for p in demo_cloud.seed.PROJECTS if p.vo):
        vcpu_h, mb_h, count = _expected_usage(demo_cloud.seed, project)
        usage = usages[project_ids[project]]
        assert usage.total_vcpus_usage == pytest.approx(vcpu_h, abs=0.01)
        assert usage.total_memory_mb_usage == pytest.approx(mb_h, abs=1)
        assert len(usage.server_usages) == count
