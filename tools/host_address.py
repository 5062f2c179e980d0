#!/usr/bin/env python3
"""Print the address of this host that every container can reach.

The demo's cloud and stand-ins listen on the host, and the appliance's
containers reach them the way they would reach a real cloud: by an address
of this host. The Docker bridge's gateway is one, routable from every
container on any network. ``docker network inspect bridge`` names it in its
IPAM config on most engines, but an engine started for the first time
records only the subnet there, so this falls back, in order, to the bridge
interface's own address, the subnet's first address (where Docker puts the
gateway), and a container's default route.

Usage: host_address.py [--network NAME]. Exits 1, naming DEMO_CLOUD_HOST,
when no address can be found.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"
PROBE_IMAGE = "debian:bookworm-slim"

Network = dict[str, Any]


class HostAddressNotFoundError(Exception):
    """No reachable address of this host could be found."""


def ipam_gateway(network: Network) -> str | None:
    """The gateway the engine recorded, if it did (IPv4 first)."""
    gateways = [
        entry["Gateway"]
        for entry in (network.get("IPAM") or {}).get("Config") or []
        if entry.get("Gateway")
    ]
    gateways.sort(key=lambda address: ipaddress.ip_address(address).version)
    return gateways[0] if gateways else None


def subnets(network: Network) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The network's subnets, IPv4 first."""
    found = [
        ipaddress.ip_network(entry["Subnet"], strict=False)
        for entry in (network.get("IPAM") or {}).get("Config") or []
        if entry.get("Subnet")
    ]
    return sorted(found, key=lambda subnet: subnet.version)


def interface_name(network: Network) -> str | None:
    """The host interface of a bridge network (``docker0`` for the default one)."""
    if network.get("Driver") != "bridge":
        return None
    name = (network.get("Options") or {}).get(BRIDGE_NAME_OPTION)
    if name:
        return name
    return "docker0" if network.get("Name") == "bridge" else None


def parse_ip_addr(output: str) -> list[str]:
    """Local addresses from ``ip -json addr show dev NAME``."""
    return [
        info["local"]
        for link in json.loads(output or "[]")
        for info in link.get("addr_info", [])
        if info.get("local")
    ]


def parse_proc_net_route(text: str) -> str | None:
    """The default gateway in a ``/proc/net/route`` table (little-endian hex)."""
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 3 and fields[1] == "00000000" and fields[2] != "00000000":
            return str(ipaddress.IPv4Address(bytes.fromhex(fields[2])[::-1]))
    return None


def find(
    network: Network,
    interface_addresses: Callable[[str], list[str]],
    container_gateway: Callable[[], str | None],
) -> str:
    """The first reachable address, trying each source in turn."""
    if gateway := ipam_gateway(network):
        return gateway
    nets = subnets(network)
    name = interface_name(network)
    if name:
        for address in interface_addresses(name):
            ip = ipaddress.ip_address(address)
            if not nets or any(ip in subnet for subnet in nets):
                return address
    if nets and nets[0].num_addresses > 2:
        return str(nets[0].network_address + 1)
    if gateway := container_gateway():
        return gateway
    raise HostAddressNotFoundError(
        f"no address of this host found for Docker network {network.get('Name', '?')!r}: "
        "its IPAM config has no gateway or subnet, no interface address and no container "
        "route answered; set DEMO_CLOUD_HOST to an address of this host that containers "
        "can reach"
    )


def _run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=120).stdout


def _interface_addresses(name: str) -> list[str]:
    try:
        return parse_ip_addr(_run("ip", "-json", "addr", "show", "dev", name))
    except (OSError, subprocess.SubprocessError, ValueError):
        return []


def _container_gateway(network_name: str) -> Callable[[], str | None]:
    def ask() -> str | None:
        try:
            table = _run(
                "docker", "run", "--rm", "--network", network_name, PROBE_IMAGE,
                "cat", "/proc/net/route",
            )  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            return None
        return parse_proc_net_route(table)

    return ask


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="bridge", help="Docker network (default: bridge)")
    args = parser.parse_args(argv)
    try:
        inspected = json.loads(_run("docker", "network", "inspect", args.network))
    except (OSError, subprocess.SubprocessError, ValueError) as error:
        detail = getattr(error, "stderr", "") or error
        print(
            f"host_address: cannot inspect Docker network {args.network!r} ({str(detail).strip()});"
            " is the engine running (tools/prepare-host)? Or set DEMO_CLOUD_HOST.",
            file=sys.stderr,
        )
        return 1
    try:
        print(find(inspected[0], _interface_addresses, _container_gateway(args.network)))
    except HostAddressNotFoundError as error:
        print(f"host_address: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
