"""How the accounting jobs read ``accounting.json``, rendered by the supervisor.

The model is ``fedcloud_common.settings.accounting.AccountingSettings``, the
one the render step builds, so a field renamed there is a type error here
too; a file that does not match it is refused with every problem named.
Both jobs read the whole file: the render step always writes both parts.
"""

from __future__ import annotations

from pathlib import Path

from fedcloud_common import settings
from fedcloud_common.settings.accounting import AccountingSettings


def load(path: Path) -> AccountingSettings:
    """The settings in ``path``; a ``fedcloud_common.errors.ConfigError`` if they are wrong."""
    return settings.load(AccountingSettings, path)
