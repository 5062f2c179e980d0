"""The one line each job run ends with.

Operators grep logs and the supervisor parses job output for it, so the
format is fixed: ``<job> <outcome> key=value ... duration=<s>s``, values
without spaces (spaces become underscores), keys in the order given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

OUTCOMES = ("ok", "partial", "failed", "skipped")
_LINE = re.compile(r"^(?P<job>\S+) (?P<outcome>ok|partial|failed|skipped)(?P<rest>( \S+=\S*)*)$")


def format_summary(job: str, outcome: str, counts: Mapping[str, object], duration_s: float) -> str:
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, not {outcome!r}")
    fields = [f"{key}={_token(value)}" for key, value in counts.items()]
    fields.append(f"duration={duration_s:.1f}s")
    return " ".join([_token(job), outcome, *fields])


def parse_summary(line: str) -> tuple[str, str, dict[str, str]] | None:
    """The (job, outcome, fields) of a summary line, or None for other lines."""
    match = _LINE.match(line.strip())
    if match is None:
        return None
    fields = dict(item.split("=", 1) for item in match["rest"].split())
    return match["job"], match["outcome"], fields


def _token(value: object) -> str:
    return re.sub(r"\s+", "_", str(value)) or "-"
