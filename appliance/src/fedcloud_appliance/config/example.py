"""appliance.example.yaml, generated from the models so it cannot drift.

A typical site's values (``typical_site``) are written out; every other key
is there too, commented out with its default, and each key carries its
field's description. ``make example`` rewrites the file; a test fails when
the committed file differs from what the models say.

    python -m fedcloud_appliance.config.example > appliance/etc/appliance.example.yaml
"""

from __future__ import annotations

import datetime
import sys
import textwrap
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, TypeAdapter
from pydantic.fields import FieldInfo

from fedcloud_appliance.config import (
    Accounting,
    ApplianceConfig,
    Bdii,
    Caso,
    Contacts,
    Credentials,
    Endorser,
    ImageList,
    Images,
    Sender,
    Site,
    VoMapping,
)

HEADER = """\
# /etc/fedcloud-appliance/appliance.yaml -- the FedCloud appliance's one
# configuration file. Check it with: appliance config check
# Secrets are paths to files readable only by root (chmod 600) in
# /etc/fedcloud-appliance/secrets/, never values.
#
# Generated from the appliance's configuration models (make example): every
# key is listed, those a typical site sets with values, the others commented
# out with their defaults.
"""
SECRETS = Path("/etc/fedcloud-appliance/secrets")
_ANY: TypeAdapter[Any] = TypeAdapter(Any)
WIDTH = 76  # comment lines, before indentation


def typical_site() -> ApplianceConfig:
    """What a typical site writes: one cloud, one VO list, accounting over AMS."""
    return ApplianceConfig(
        site=Site(
            name="MY-SITE",
            hostname="cloud.example.org",
            country="NL",
            contacts=Contacts(email="cloud-admins@example.org"),
        ),
        openstack=Credentials.model_validate(
            {
                "auth_url": "https://keystone.example.org:5000/v3",
                "username": "fedcloud",
                "password_file": SECRETS / "openstack-password",
                "project_name": "fedcloud-ops",
                "region": "RegionOne",
            }
        ),
        images=Images(
            lists=[
                ImageList.model_validate(
                    {
                        "name": "fedcloud-vo",
                        "url": "https://appdb.egi.eu/store/vo/fedcloud.egi.eu/image.list",
                        "token_file": SECRETS / "appdb-token",
                        "vo": "fedcloud.egi.eu",
                        "project": "vo-fedcloud",
                        "endorser": Endorser(
                            dn="/DC=EU/DC=EGI/C=GR/O=Robots/O=Greek Research and Technology "
                            "Network/CN=Robot:argo-egi@grnet.gr",
                            ca="/DC=EU/DC=EGI/C=GR/O=Greek Research and Technology Network"
                            "/CN=GRNET CA 2019",
                        ),
                    }
                )
            ]
        ),
        bdii=Bdii(vos={"fedcloud.egi.eu": VoMapping(project="vo-fedcloud")}),
        accounting=Accounting(
            enabled=True,
            caso=Caso(project_tag="fedcloud", start_date=datetime.date(2026, 1, 1)),
            sender=Sender(),
        ),
    )


def generate(config: ApplianceConfig | None = None) -> str:
    config = config or typical_site()
    lines = [HEADER]
    for name, field in ApplianceConfig.model_fields.items():
        lines += _field(name, field, getattr(config, name), 0, top=True)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _field(name: str, field: FieldInfo, value: Any, depth: int, top: bool = False) -> list[str]:
    pad = "  " * depth
    out = [f"{pad}# {line}" for line in _describe(field)]
    model = _model_of(field.annotation)
    is_set = top or value != field.get_default(call_default_factory=True)
    if model is not None and isinstance(value, BaseModel):
        inner = _model(value, depth + 1)
        # A section with nothing set is all comments: its header is one too.
        anything_set = any(not line.lstrip().startswith("#") for line in inner)
        out.append(f"{pad}{name}:" if anything_set else f"{pad}# {name}:")
        out += inner
        return out
    if model is Credentials and value is None:
        out.append(f"{pad}# {name}: {{...}}  # the keys of the top-level openstack section")
        return out
    if model is not None and value is None:
        # An optional section left out: its keys, commented, with their defaults.
        out.append(f"{pad}# {name}:")
        for key, info in model.model_fields.items():
            default = info.get_default(call_default_factory=True)
            shown = "..." if info.is_required() else _scalar(_plain(default))
            out.append(f"{pad}#   {key}: {shown}")
        return out
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        out.append(f"{pad}{name}:")
        for item in value:
            entry = _model(item, depth + 2)
            out.append(f"{pad}  - {entry[0].strip()}")
            out += entry[1:]
        return out
    if isinstance(value, dict) and not value and model is not None:
        # An empty map of sections: one commented entry with every key's default.
        out.append(f"{pad}# {name}:")
        out.append(f"{pad}#   NAME:")
        for key, info in model.model_fields.items():
            default = info.get_default(call_default_factory=True)
            shown = "..." if info.is_required() else _scalar(_plain(default))
            out.append(f"{pad}#     {key}: {shown}")
        return out
    if isinstance(value, dict) and value and isinstance(next(iter(value.values())), BaseModel):
        out.append(f"{pad}{name}:")
        for key, item in value.items():
            out.append(f"{pad}  {_scalar(key)}:")
            out += _model(item, depth + 2)
        return out
    text = f"{name}: {_scalar(_plain(value))}"
    out.append(f"{pad}{text}" if is_set else f"{pad}# {text}")
    return out


def _model(value: BaseModel, depth: int) -> list[str]:
    lines: list[str] = []
    for name, field in type(value).model_fields.items():
        lines += _field(name, field, getattr(value, name), depth)
    return lines


def _describe(field: FieldInfo) -> list[str]:
    if not field.description:
        return []
    return textwrap.wrap(field.description, WIDTH)


def _plain(value: Any) -> Any:
    """The value as appliance.yaml spells it (JSON mode: durations as ISO 8601)."""
    return _ANY.dump_python(value, mode="json")


def _scalar(value: Any) -> str:
    text = str(yaml.safe_dump(value, default_flow_style=True, width=1000, allow_unicode=True))
    return text.removesuffix("\n...\n").strip()


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


if __name__ == "__main__":
    sys.stdout.write(generate())
