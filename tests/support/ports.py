"""Free TCP ports for the servers the tests start (stand-ins, slapd, brokers).

Each suite looks in a range of its own (bdii 41000-41999, accounting
42000-42999, the demo data 45000-45999, ...), so suites run side by side
never hand out the same port, and none of them collides with the demo's
ports.
"""

from __future__ import annotations

import socket


def free_port(ports: range) -> int:
    """The first port in ``ports`` nothing listens on at 127.0.0.1 now."""
    for port in ports:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1}")
