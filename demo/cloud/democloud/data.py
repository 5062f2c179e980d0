"""What the demo cloud is seeded with.

Everything is fixed here, identifiers included, so that every build of the
image holds the same cloud and tests can assert exact values. Times are
absolute for the same reason; servers without an end time are still running
and so show up in any usage window after their launch.
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid

REGION = "RegionOne"
# A second region of the same Keystone with only its own Glance (port
# 9293): a target of the appliance's multi-region image sync.
REGION_TWO = "RegionTwo"
DOMAIN = "Default"
# A second Keystone domain, as federated (EGI Check-in) users live in one of
# their own: their resources must be accounted under their real names.
FEDERATED_DOMAIN = "egi-checkin"  # ("federated" is reserved by Keystone)

# uuid5 namespace for every identifier the seed invents.
_NS = uuid.UUID("6c1f1c9e-3b1e-4f59-9a55-2f7e6c0d2a10")


def fixed_id(kind: str, name: str) -> str:
    """A stable UUID for a seeded object, the same in every build."""
    return str(uuid.uuid5(_NS, f"{kind}:{name}"))


@dataclasses.dataclass(frozen=True)
class Project:
    name: str
    vo: str | None
    description: str


@dataclasses.dataclass(frozen=True)
class User:
    name: str
    password: str
    project: str
    roles: dict[str, tuple[str, ...]]  # project name -> role names
    system_roles: tuple[str, ...] = ()
    domain: str = DOMAIN


@dataclasses.dataclass(frozen=True)
class Flavor:
    name: str
    vcpus: int
    ram: int
    disk: int
    is_public: bool = True
    extra_specs: dict[str, str] = dataclasses.field(default_factory=dict)
    access: tuple[str, ...] = ()  # projects granted a private flavor


@dataclasses.dataclass(frozen=True)
class FloatingIp:
    project: str
    address: str
    created_at: datetime.datetime


@dataclasses.dataclass(frozen=True)
class Server:
    name: str
    project: str
    user: str
    flavor: str
    launched_at: datetime.datetime
    terminated_at: datetime.datetime | None = None


# Projects whose resources are accounted and published carry this tag;
# cASO selects projects by it, and the VO name sits in the "VO" property.
ACCOUNTED_TAG = "fedcloud"
VO_PROPERTY = "VO"

PROJECTS = (
    Project("admin", None, "Bootstrap administration project"),
    Project("service", None, "OpenStack service users"),
    Project("vo-demo", "vo.demo.example", "Resources of the demo VO"),
    Project("vo-fedcloud", "fedcloud.egi.eu", "Resources of the FedCloud VO"),
    Project("fedcloud-ops", None, "The FedCloud appliance's own project"),
)

VO_PROJECTS = tuple(p.name for p in PROJECTS if p.vo)

SERVICE_USERS = (
    User("glance", "glancepass", "service", {"service": ("admin", "service")}),
    User("nova", "novapass", "service", {"service": ("admin", "service")}),
    User("swift", "swiftpass", "service", {"service": ("admin", "service")}),
)

USERS = (
    # The appliance's account: writes images into the VO projects (member,
    # so it can share and accept), reads flavors, servers and usage across
    # projects (admin in its own project, as sites configure cASO today).
    # cASO lists the tagged projects and looks users up with a system-scoped
    # token, so it also holds the system reader role (cASO's documented need).
    User(
        "fedcloud",
        "fedcloudpass",
        "fedcloud-ops",
        {"fedcloud-ops": ("admin",), **{p: ("member",) for p in VO_PROJECTS}},
        system_roles=("reader",),
    ),
    # Accounting's own account, least privilege: reader on each accounted
    # project (servers, usage, flavors, images) and the system reader role
    # (cASO lists the tagged projects and looks users up system-scoped);
    # no admin, no member anywhere.
    User(
        "accounting",
        "accountingpass",
        "vo-demo",
        {p: ("reader",) for p in VO_PROJECTS},
        system_roles=("reader",),
    ),
    # The same without the system role: cASO cannot list projects with it.
    User("accounting-noreader", "accountingpass", "vo-demo", {p: ("reader",) for p in VO_PROJECTS}),
    User("alice", "alicepass", "vo-demo", {"vo-demo": ("member",)}),
    User("bob", "bobpass", "vo-fedcloud", {"vo-fedcloud": ("member",)}),
    User(
        "carol", "carolpass", "vo-fedcloud", {"vo-fedcloud": ("member",)}, domain=FEDERATED_DOMAIN
    ),
)

FLAVORS = (
    Flavor("m1.small", vcpus=1, ram=2048, disk=20),
    Flavor("m1.large", vcpus=4, ram=8192, disk=80, extra_specs={"hw:cpu_policy": "shared"}),
    Flavor(
        "g1.gpu-a100",
        vcpus=8,
        ram=32768,
        disk=100,
        is_public=False,
        extra_specs={
            "pci_passthrough:alias": "a100:1",
            "gpu_number": "1",
            "gpu_vendor": "NVIDIA",
            "gpu_model": "A100",
            "gpu_memory": "40960",
            # what cASO's accelerator records read ([accelerator] *_key)
            "Accelerator:Type": "GPU",
            "Accelerator:Vendor": "NVIDIA",
            "Accelerator:Model": "A100",
            "Accelerator:Number": "1",
        },
        access=("vo-demo",),
    ),
)


def _utc(*args: int) -> datetime.datetime:
    return datetime.datetime(*args, tzinfo=datetime.UTC)


SERVERS = (
    Server("demo-analysis-1", "vo-demo", "alice", "m1.small", _utc(2026, 1, 5, 8, 0)),
    Server("demo-analysis-2", "vo-demo", "alice", "m1.large", _utc(2026, 2, 10, 12, 30)),
    Server(
        "demo-gpu-train",
        "vo-demo",
        "alice",
        "g1.gpu-a100",
        _utc(2026, 3, 1, 0, 0),
        terminated_at=_utc(2026, 3, 3, 6, 0),
    ),
    Server("fedcloud-portal", "vo-fedcloud", "bob", "m1.small", _utc(2026, 1, 20, 9, 15)),
    Server(
        "fedcloud-batch",
        "vo-fedcloud",
        "bob",
        "m1.large",
        _utc(2026, 4, 1, 0, 0),
        terminated_at=_utc(2026, 4, 2, 0, 0),
    ),
    # a user of the other domain, still running
    Server("federated-notebook", "vo-fedcloud", "carol", "m1.small", _utc(2026, 5, 4, 10, 0)),
)

# Public IPs the Neutron stand-in lists for their project (cASO's ip records).
FLOATING_IPS = (
    FloatingIp("vo-demo", "203.0.113.10", _utc(2026, 1, 5, 8, 5)),
    FloatingIp("vo-demo", "203.0.113.11", _utc(2026, 2, 10, 12, 35)),
    FloatingIp("vo-fedcloud", "203.0.113.20", _utc(2026, 1, 20, 9, 20)),
    FloatingIp("vo-fedcloud", "2001:db8::20", _utc(2026, 1, 20, 9, 20)),
)
