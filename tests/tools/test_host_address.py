"""tools/host_address.py finds the host's address on both shapes of
``docker network inspect bridge`` output, and demo-data refuses a host it
could not find."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tools import host_address

ROOT = Path(__file__).resolve().parents[2]

# An engine that has run before: the IPAM config names the gateway.
INSPECT_WITH_GATEWAY = {
    "Name": "bridge",
    "Driver": "bridge",
    "IPAM": {"Driver": "default", "Config": [{"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}]},
    "Options": {"com.docker.network.bridge.name": "docker0"},
}
# An engine started for the first time: only the subnet.
INSPECT_FIRST_START = {
    "Name": "bridge",
    "Driver": "bridge",
    "IPAM": {"Driver": "default", "Options": None, "Config": [{"Subnet": "172.18.0.0/16"}]},
    "Options": {"com.docker.network.bridge.name": "docker0"},
}
IP_ADDR_DOCKER0 = """[{"ifindex":3,"ifname":"docker0","addr_info":[
 {"family":"inet","local":"172.18.0.1","prefixlen":16},
 {"family":"inet6","local":"fe80::42:1","prefixlen":64}]}]"""
PROC_NET_ROUTE = (
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n"
    "eth0\t00000000\t010013AC\t0003\t0\t0\t0\t00000000\n"
    "eth0\t000013AC\t00000000\t0001\t0\t0\t0\t0000FFFF\n"
)


def never(*_args: object) -> list[str]:
    raise AssertionError("not asked: an earlier source answered")


def test_the_ipam_gateway_is_taken_when_the_engine_recorded_it() -> None:
    assert host_address.find(INSPECT_WITH_GATEWAY, never, never) == "172.17.0.1"


def test_a_first_start_engine_falls_back_to_the_bridge_interface_address() -> None:
    asked: list[str] = []

    def addresses(name: str) -> list[str]:
        asked.append(name)
        return host_address.parse_ip_addr(IP_ADDR_DOCKER0)

    assert host_address.find(INSPECT_FIRST_START, addresses, never) == "172.18.0.1"
    assert asked == ["docker0"]


def test_an_interface_address_outside_the_subnet_is_not_taken() -> None:
    found = host_address.find(INSPECT_FIRST_START, lambda _name: ["10.9.9.9"], never)
    assert found == "172.18.0.1"  # the subnet's first address, not 10.9.9.9


def test_without_an_interface_the_subnets_first_address_is_taken() -> None:
    assert host_address.find(INSPECT_FIRST_START, lambda _name: [], never) == "172.18.0.1"


def test_without_ipam_data_a_containers_default_route_is_asked() -> None:
    bare = {"Name": "bridge", "Driver": "bridge", "IPAM": {"Config": []}}
    route = host_address.parse_proc_net_route(PROC_NET_ROUTE)
    assert route == "172.19.0.1"
    assert host_address.find(bare, lambda _name: [], lambda: route) == "172.19.0.1"


def test_nothing_found_names_demo_cloud_host() -> None:
    bare = {"Name": "bridge", "Driver": "bridge", "IPAM": {"Config": None}}
    with pytest.raises(host_address.HostAddressNotFoundError, match="DEMO_CLOUD_HOST"):
        host_address.find(bare, lambda _name: [], lambda: None)


def test_an_ipv4_gateway_is_preferred_to_an_ipv6_one() -> None:
    dual = {
        "Name": "bridge",
        "Driver": "bridge",
        "IPAM": {"Config": [{"Subnet": "fd00::/64", "Gateway": "fd00::1"},
                            {"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}]},
    }  # fmt: skip
    assert host_address.find(dual, never, never) == "172.17.0.1"


@pytest.mark.parametrize(
    ("host", "says"),
    [("", "is empty"), ("   ", "is empty"), ("http://demo.example", "neither an IP")],
)
def test_demo_data_refuses_an_empty_or_invalid_host(tmp_path: Path, host: str, says: str) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "demo" / "bin" / "demo-data"), str(tmp_path / "out"),
         "--host", host],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert says in done.stderr and "DEMO_CLOUD_HOST" in done.stderr
    assert not (tmp_path / "out").exists()  # nothing written, no empty SAN
