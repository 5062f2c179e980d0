"""Seed Keystone and Nova flavors through their APIs, as an operator would.

Run once at image build time, with the services up and the admin password
from bootstrap. Servers are not created here: without a compute service
they are written straight into Nova's cell database (``seed_servers``).
"""

from __future__ import annotations

import json
import sys

import openstack

from democloud import data

PORTS = {"identity": 5000, "image": 9292, "compute": 8774, "network": 9696}
PATHS = {"compute": "/v2.1"}
REGION_TWO_GLANCE_PORT = 9293
SERVICE_NAMES = {"image": "glance", "compute": "nova", "network": "neutron-standin"}
# Swift (issue 18): each project's account, as Keystone-backed sites publish it.
PORTS["object-store"] = 8880
PATHS["object-store"] = "/v1/AUTH_$(project_id)s"  # Keystone fills it in per token
SERVICE_NAMES["object-store"] = "swift"


def _endpoint_url(service_type: str) -> str:
    return f"http://127.0.0.1:{PORTS[service_type]}{PATHS.get(service_type, '')}"


def seed_catalog(conn: openstack.connection.Connection) -> None:
    for service_type, name in SERVICE_NAMES.items():
        service = conn.identity.create_service(type=service_type, name=name)
        for interface in ("public", "internal", "admin"):
            conn.identity.create_endpoint(
                service_id=service.id,
                interface=interface,
                url=_endpoint_url(service_type),
                region_id=data.REGION,
            )


def seed_second_region(conn: openstack.connection.Connection) -> None:
    """RegionTwo: a region of this Keystone whose one service is its own Glance."""
    conn.identity.create_region(id=data.REGION_TWO, description="image sync target")
    service = conn.identity.find_service("glance")
    for interface in ("public", "internal", "admin"):
        conn.identity.create_endpoint(
            service_id=service.id,
            interface=interface,
            url=f"http://127.0.0.1:{REGION_TWO_GLANCE_PORT}",
            region_id=data.REGION_TWO,
        )


def seed_projects(conn: openstack.connection.Connection) -> dict[str, str]:
    """Create projects with fixed ids; VO projects get the tag and property.

    The VO rides as an extra project property, which openstacksdk's
    Project resource does not model, so the body is posted directly.
    """
    ids = {p.name: p.id for p in conn.identity.projects()}
    domain = conn.identity.find_domain("default")
    for project in data.PROJECTS:
        if project.name in ids:
            continue
        body: dict[str, object] = {
            "name": project.name,
            "domain_id": domain.id,
            "description": project.description,
            "enabled": True,
        }
        if project.vo:
            body["tags"] = [data.ACCOUNTED_TAG]
            body[data.VO_PROPERTY] = project.vo
        resp = conn.identity.post("/projects", json={"project": body})
        resp.raise_for_status()
        ids[project.name] = resp.json()["project"]["id"]
    return ids


def seed_users(
    conn: openstack.connection.Connection, project_ids: dict[str, str]
) -> dict[str, str]:
    roles = {r.name: r for r in conn.identity.roles()}
    for name in ("member", "reader", "service"):
        if name not in roles:
            roles[name] = conn.identity.create_role(name=name)
    user_ids = {}
    domains = {d.name: d.id for d in conn.identity.domains()}
    for user in data.SERVICE_USERS + data.USERS:
        if user.domain not in domains:
            domains[user.domain] = conn.identity.create_domain(name=user.domain).id
        created = conn.identity.create_user(
            name=user.name,
            password=user.password,
            default_project_id=project_ids[user.project],
            domain_id=domains[user.domain],
        )
        user_ids[user.name] = created.id
        for project, role_names in user.roles.items():
            for role in role_names:
                conn.identity.assign_project_role_to_user(
                    project_ids[project], created, roles[role]
                )
        for role in user.system_roles:
            conn.identity.assign_system_role_to_user(created, roles[role], "all")
    return user_ids


def seed_flavors(conn: openstack.connection.Connection, project_ids: dict[str, str]) -> None:
    for flavor in data.FLAVORS:
        created = conn.compute.create_flavor(
            name=flavor.name,
            id=data.fixed_id("flavor", flavor.name),
            vcpus=flavor.vcpus,
            ram=flavor.ram,
            disk=flavor.disk,
            is_public=flavor.is_public,
        )
        if flavor.extra_specs:
            conn.compute.create_flavor_extra_specs(created, flavor.extra_specs)
        for project in flavor.access:
            conn.compute.flavor_add_tenant_access(created, project_ids[project])


def main() -> int:
    """Seed everything; argv: admin password, file to write the ids to."""
    admin = openstack.connect(
        auth_url="http://127.0.0.1:5000/v3",
        username="admin",
        password=sys.argv[1],
        project_name="admin",
        user_domain_name=data.DOMAIN,
        project_domain_name=data.DOMAIN,
        region_name=data.REGION,
    )
    seed_catalog(admin)
    seed_second_region(admin)
    project_ids = seed_projects(admin)
    user_ids = seed_users(admin, project_ids)
    with open(sys.argv[2], "w", encoding="utf-8") as ids_file:
        json.dump({"projects": project_ids, "users": user_ids}, ids_file, indent=2)
    # A fresh connection sees the catalog entries created above.
    admin = openstack.connect(
        auth_url="http://127.0.0.1:5000/v3",
        username="admin",
        password=sys.argv[1],
        project_name="admin",
        user_domain_name=data.DOMAIN,
        project_domain_name=data.DOMAIN,
        region_name=data.REGION,
    )
    seed_flavors(admin, project_ids)
    print(
        f"seeded {len(project_ids)} projects, {len(data.USERS)} users, {len(data.FLAVORS)} flavors"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
