"""Ways to deliver a signed message; one entry point per protocol.

Back-ends are registered under ``fedcloud_accounting.transports`` in the
package's pyproject and loaded here only, so an unknown protocol name fails
loudly with the list of known ones.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from fedcloud_accounting.transports.base import Outgoing, Transport
from fedcloud_common.errors import ConfigError
from fedcloud_common.settings.accounting import SendSettings

GROUP = "fedcloud_accounting.transports"

__all__ = ["Outgoing", "Transport", "load"]


def load(config: SendSettings) -> Transport:
    found = {ep.name: ep for ep in entry_points(group=GROUP)}
    if config.protocol not in found:
        raise ConfigError(
            where="send.protocol",
            problem=f"no transport {config.protocol!r} installed, known: {sorted(found)}",
        )
    cls: type[Transport] = found[config.protocol].load()
    return cls(config)
