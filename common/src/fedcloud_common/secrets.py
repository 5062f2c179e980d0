"""Secrets are read from files, never taken inline and never logged.

A secret file readable by group or others is refused: on a shared host that
is a leak waiting to happen, and operators expect the same strictness as
ssh and the grid host key.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from fedcloud_common.errors import SecretFileError


class Secret:
    """A secret value whose repr and str never show it."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str) -> None:
        self._value = value
        self.source = source

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret(from {self.source})"

    __str__ = __repr__


def read_secret(path: str | os.PathLike[str]) -> Secret:
    """Read one secret from ``path`` (trailing newline dropped)."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise SecretFileError(
            path=path, problem="does not exist", fix="create it or fix the path"
        ) from None
    except PermissionError:
        raise SecretFileError(
            path=path, problem="cannot be read by this user", fix="check its owner"
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise SecretFileError(path=path, problem="is not a regular file", fix="point at a file")
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretFileError(
            path=path,
            problem=f"mode {stat.filemode(info.st_mode)} lets others read it",
            fix=f"run: chmod 600 {path}",
        )
    try:
        value = path.read_text(encoding="utf-8").rstrip("\r\n")
    except PermissionError:
        raise SecretFileError(
            path=path,
            problem=f"cannot be read by uid {os.getuid()} (owner uid {info.st_uid})",
            fix=f"make that uid its owner: chown {os.getuid()} {path}",
        ) from None
    if not value:
        raise SecretFileError(path=path, problem="is empty", fix="write the secret into it")
    return Secret(value, str(path))
