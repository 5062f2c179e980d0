"""A site's existing caso.conf, taken as input (``accounting.caso.conf_file``).

A site moving to the appliance already has a caso.conf; rather than ask for
it to be re-typed, the render step reads the options that say *what* to
account and fills those appliance.yaml leaves unset: ``projects``,
``caso_tag``, ``vo_property``, the extractors (or ``[messenger_ssm]
record_types``), and the ``[accelerator]`` and ``[benchmark]`` flavor
property names. What says *how* is the appliance's own and not read:
``[keystone_auth]`` (the accounting credentials are), the spool and lock
paths, the messengers. A ``site_name`` other than the site's is refused,
since records would go out under two names.
"""

from __future__ import annotations

import configparser
from pathlib import Path

from fedcloud_common.errors import ConfigError

KEY = "accounting.caso.conf_file"
# cASO extractor -> the record types it gives (energy is not sent: see settings)
_TYPES = {"nova": ["cloud", "accelerator"], "neutron": ["ip"], "cinder": ["storage"]}
_CARRIED = ("accelerator", "benchmark")


def read_caso_conf(path: Path, site_name: str) -> dict[str, object]:
    """The ExtractSettings fields ``path`` gives, by name; ConfigError naming the fix."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except OSError as error:
        raise ConfigError(where=KEY, problem=f"cannot read {path}: {error.strerror}") from None
    except configparser.Error as error:
        problem = f"{path} is not a caso.conf ({str(error).splitlines()[0]})"
        raise ConfigError(where=KEY, problem=problem) from None
    default = parser.defaults()
    found: dict[str, object] = {}
    if default.get("site_name") and default["site_name"] != site_name:
        raise ConfigError(
            where=KEY,
            problem=f"its site_name {default['site_name']!r} is not site.name {site_name!r}: "
            "records would go out under two names; make them agree",
        )
    projects = _list(default.get("projects", ""))
    if projects:
        found["projects"] = projects
    if default.get("caso_tag"):
        found["project_tag"] = default["caso_tag"]
    if default.get("vo_property"):
        found["vo_property"] = default["vo_property"]
    wanted = _list(parser.get("messenger_ssm", "record_types", fallback=""))
    extractors = _list(default.get("extractor", ""))
    unknown = [e for e in extractors if e not in _TYPES]
    if unknown:
        raise ConfigError(
            where=KEY,
            problem=f"extractor {', '.join(unknown)} is not one the appliance runs "
            f"(known: {', '.join(_TYPES)}); remove it from the file",
        )
    if extractors:
        offered = [kind for e in extractors for kind in _TYPES[e]]
        found["record_types"] = [k for k in offered if not wanted or k in wanted]
    elif wanted:
        found["record_types"] = wanted
    # items() repeats [DEFAULT]'s options: keep the section's own
    found["caso_sections"] = {
        section: {k: v for k, v in parser.items(section, raw=True) if k not in default}
        for section in _CARRIED
        if parser.has_section(section)
    }
    return found


def _list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]
