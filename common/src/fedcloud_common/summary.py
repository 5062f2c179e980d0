"""The one line each job run ends with.

Operators grep logs and the supervisor parses job output for it, so the
format is fixed: ``<job> <outcome> key=value ... duration=<s>s``, values
without spaces (spaces become underscores), keys in the order given. A run
that is not ``ok`` adds `` -- <reason>``: one line in plain words, naming
the fix where there is one, which the supervisor shows as the run's reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

OUTCOMES = ("ok", "partial", "failed", "skipped")
_LINE = re.compile(
    r"^(?P<job>\S+) (?P<outcome>ok|partial|failed|skipped)(?P<rest>( \S+=\S*)*)"
    r"(?: -- (?P<reason>.*))?$"
)


def format_summary(
    job: str, outcome: str, counts: Mapping[str, object], duration_s: float, reason: str = ""
) -> str:
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, not {outcome!r}")
    fields = [f"{key}={_token(value)}" for key, value in counts.items()]
    fields.append(f"duration={duration_s:.1f}s")
    line = " ".join([_token(job), outcome, *fields])
    reason = " ".join(reason.split())
    return f"{line} -- {reason}" if reason else line


def parse_summary(line: str) -> tuple[str, str, dict[str, str]] | None:
    """The (job, outcome, fields) of a summary line, or None for other lines.

    The reason, if any, is in the fields as ``reason``.
    """
    match = _LINE.match(line.strip())
    if match is None:
        return None
    fields = dict(item.split("=", 1) for item in match["rest"].split())
    if match["reason"]:
        fields["reason"] = match["reason"].strip()
    return match["job"], match["outcome"], fields


def _token(value: object) -> str:
    return re.sub(r"\s+", "_", str(value)) or "-"
