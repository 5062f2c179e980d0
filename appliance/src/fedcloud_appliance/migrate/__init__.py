"""``appliance migrate``: an appliance.yaml from an existing cloudkeeper or atrope install.

A site moving to the appliance has its settings spread over the old tools'
files. Each reader (one module per tool) fills a ``Draft``: the sections of
appliance.yaml, the secrets found (kept out of it, written as root-only
files in the secrets directory), and the keys it could not carry over with
why. ``lay_out`` writes the secrets and returns the YAML to print; no
secret's value is ever part of it or of any message.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

import yaml

from fedcloud_common.files import write_atomically

# Who signs EGI AppDB's VO-wide image lists: what cloudkeeper trusted without
# pinning it, and what the appliance's example names.
APPDB_ENDORSER = {
    "dn": "/DC=EU/DC=EGI/C=GR/O=Robots/O=Greek Research and Technology Network"
    "/CN=Robot:argo-egi@grnet.gr",
    "ca": "/DC=EU/DC=EGI/C=GR/O=Greek Research and Technology Network/CN=GRNET CA 2019",
}


@dataclasses.dataclass
class Draft:
    """appliance.yaml as read so far, and what it leaves out."""

    config_dir: Path
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)
    read: list[str] = dataclasses.field(default_factory=list)
    _secrets: dict[str, str] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def secrets_dir(self) -> Path:
        return self.config_dir / "secrets"

    def section(self, *keys: str) -> dict[str, Any]:
        """The (nested) section, created empty when missing."""
        here = self.config
        for key in keys:
            here = here.setdefault(key, {})
        return here

    def secret(self, name: str, value: str) -> str:
        """Where the secret will be (in the secrets directory); its value stays here."""
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")
        self._secrets[name] = value.strip()
        return str(self.secrets_dir / name)

    def skip(self, key: str, why: str) -> None:
        self.notes.append(f"{key}: {why}")

    def setdefault(self, keys: tuple[str, ...], value: Any, source: str) -> None:
        """Set a key the first reader finds; a later, different value is named."""
        *parents, last = keys
        section = self.section(*parents)
        if last not in section:
            section[last] = value
        elif section[last] != value:
            self.skip(
                f"{source} {'.'.join(keys)}",
                f"{'.'.join(keys)} already set from an earlier file; check which one is right",
            )

    def lay_out(self) -> str:
        """Write the secrets (0600, directory 0700); the YAML to print."""
        if self._secrets:
            self.secrets_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.secrets_dir, 0o700)
        for name, value in sorted(self._secrets.items()):
            write_atomically(self.secrets_dir / name, value + "\n", mode=0o600)
        head = ["# appliance.yaml written by `appliance migrate` from:"]
        head += [f"#   {path}" for path in self.read] or ["#   (no old configuration found)"]
        if self._secrets:
            head.append(f"# Secrets were written to {self.secrets_dir}/ (root-only files).")
        if self.notes:
            head.append("# Not carried over (set by hand if needed):")
            head += [f"#   {note}" for note in self.notes]
        head.append("# Check it with: appliance config check")
        body = str(yaml.safe_dump(self.config, sort_keys=False, default_flow_style=False))
        return "\n".join(head) + "\n" + body

    @property
    def secret_names(self) -> list[str]:
        return sorted(self._secrets)
