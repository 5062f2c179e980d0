"""Write the seeded servers into Nova's cell database with Nova's own objects.

The demo cloud runs nova-api only (no scheduler, conductor or compute), so
servers cannot be booted. Instances written through ``nova.objects`` are
what nova-api reads back for ``/servers/detail``, ``all_tenants`` listings
and ``os-simple-tenant-usage``, which is all the appliance consumes.
"""

from __future__ import annotations

import json
import sys

from nova import config, context, objects
from nova.compute import power_state, vm_states
from nova.network import model as network_model

from democloud import data


def seed(ids: dict[str, dict[str, str]]) -> int:
    """Create the servers; ``ids`` maps Keystone names to ids (from seed_api)."""
    ctxt = context.get_admin_context()
    cell = next(c for c in objects.CellMappingList.get_all(ctxt) if c.name == "cell1")
    with context.target_cell(ctxt, cell) as cctxt:
        for server in data.SERVERS:
            flavor = objects.Flavor.get_by_name(ctxt, server.flavor)
            instance = objects.Instance(
                context=cctxt,
                uuid=data.fixed_id("server", server.name),
                project_id=ids["projects"][server.project],
                user_id=ids["users"][server.user],
                display_name=server.name,
                hostname=server.name,
                flavor=flavor,
                vcpus=flavor.vcpus,
                memory_mb=flavor.memory_mb,
                root_gb=flavor.root_gb,
                ephemeral_gb=flavor.ephemeral_gb,
                image_ref=data.fixed_id("image", "seed-image"),
                availability_zone="nova",
                vm_state=vm_states.ACTIVE,
                power_state=power_state.RUNNING,
                task_state=None,
                created_at=server.launched_at,
                launched_at=server.launched_at,
                scheduled_at=server.launched_at,
                launched_on="democloud",
                # nova-api renders addresses from this cache; servers with no
                # ports still need an (empty) one.
                info_cache=objects.InstanceInfoCache(network_info=network_model.NetworkInfo([])),
            )
            instance.create()
            objects.InstanceMapping(
                ctxt,
                instance_uuid=instance.uuid,
                cell_mapping=cell,
                project_id=instance.project_id,
                user_id=instance.user_id,
                queued_for_delete=server.terminated_at is not None,
            ).create()
            if server.terminated_at is not None:
                instance.vm_state = vm_states.DELETED
                instance.power_state = power_state.NOSTATE
                instance.terminated_at = server.terminated_at
                instance.save()
                instance.destroy()
    return len(data.SERVERS)


def main() -> int:
    """argv: nova.conf, the ids file written by seed_api."""
    config.parse_args(["nova-seed", "--config-file", sys.argv[1]])
    objects.register_all()
    with open(sys.argv[2], encoding="utf-8") as ids_file:
        count = seed(json.load(ids_file))
    print(f"seeded {count} servers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
