"""An existing GlanceSync config file (INI), read as a ``regions`` section.

``[main]`` gives the master region and ``max_children``; ``[DEFAULT]`` the
defaults; ``[master]`` and every other section a target, with
``credential = user,base64(password),keystone_url,tenant`` (or ``user``,
``password``, ``keystone_url``, ``tenant``). Passwords stay in memory until
the render step writes each into its own secret file.

``metadata_condition`` was Python that GlanceSync evaluated. It is parsed
here, never run: the forms GlanceSync's documentation shows (``is_public``,
``'key' in image.user_properties``, ``user_properties.get('key') ==
'value'``, the default ``metadata_set`` intersection, ``True``, ``False``,
joined by ``and``) become the declarative rule; anything else is refused
with the rule to write instead.
"""

from __future__ import annotations

import ast
import base64
import binascii
import configparser
import dataclasses
from pathlib import Path
from typing import Any

from fedcloud_common.errors import ConfigError
from fedcloud_common.secrets import Secret
from fedcloud_common.settings.glancesync import Condition, Conflicts, Policy, Selection

POLICY_KEYS = {
    "replace", "rename", "dontupdate", "forcesyncs", "metadata_condition", "metadata_set",
    "only_tenant_images", "support_obsolete_images", "obsolete_syncprops",
    "list_images_timeout",
}  # fmt: skip
TARGET_KEYS = {"credential", "user", "password", "keystone_url", "tenant", "ignore_regions",
               "use_keystone_v3", "tenant_id", "region"}  # fmt: skip
MAIN_KEYS = {"master_region", "preferable_order", "max_children", "images_dir"}
DECLARATIVE = (
    "selection: {select: condition, condition: {public: true, any_property: [nid, type], "
    "properties: {type: baseimages}, tags: []}} (every clause must hold; any_property: at "
    "least one of them; select: forcesyncs for metadata_condition=False)"
)


@dataclasses.dataclass(frozen=True)
class LegacyTarget:
    username: str
    password: Secret
    auth_url: str
    project_name: str
    ignore_regions: list[str]
    policy: Policy


@dataclasses.dataclass(frozen=True)
class LegacyConfig:
    master_region: str
    parallelism: int
    targets: dict[str, LegacyTarget]


def read(path: Path) -> LegacyConfig:
    """The file as a regions section; a ConfigError naming the section and key."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with path.open(encoding="utf-8") as source:
            parser.read_file(source)
    except (OSError, configparser.Error) as error:
        raise ConfigError(where=str(path), problem=f"not a GlanceSync file: {error}") from None
    main = parser["main"] if parser.has_section("main") else {}
    unknown = set(main) - MAIN_KEYS - POLICY_KEYS
    if unknown:
        raise ConfigError(where=f"{path} [main]", problem=f"unknown keys {sorted(unknown)}")
    master_region = main.get("master_region")
    if not master_region:
        raise ConfigError(where=f"{path} [main] master_region", problem="missing")
    if not parser.has_section("master"):
        raise ConfigError(where=f"{path} [master]", problem="missing: the master target")
    targets = {}
    for name in parser.sections():
        if name == "main":
            continue
        targets[name] = _target(path, name, parser[name])
    return LegacyConfig(
        master_region=master_region,
        parallelism=_int(path, "main", "max_children", main.get("max_children", "1")),
        targets=targets,
    )


def _target(path: Path, name: str, section: configparser.SectionProxy) -> LegacyTarget:
    where = f"{path} [{name}]"
    unknown = set(section) - TARGET_KEYS - POLICY_KEYS - MAIN_KEYS
    if unknown:
        raise ConfigError(where=where, problem=f"unknown keys {sorted(unknown)}")
    if "credential" in section:
        parts = [part.strip() for part in section["credential"].split(",")]
        if len(parts) != 4:
            raise ConfigError(
                where=f"{where} credential",
                problem="give user,base64(password),keystone_url,tenant_name",
            )
        user, encoded, url, tenant = parts
        try:
            password = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ConfigError(
                where=f"{where} credential", problem="the password is not valid base64"
            ) from None
    else:
        missing = [k for k in ("user", "password", "keystone_url", "tenant") if k not in section]
        if missing:
            raise ConfigError(
                where=where,
                problem=f"no credential: give credential = user,base64(password),url,tenant "
                f"(missing {', '.join(missing)})",
            )
        user, password = section["user"], section["password"]
        url, tenant = section["keystone_url"], section["tenant"]
    return LegacyTarget(
        username=user,
        password=Secret(password, f"{where} credential"),
        auth_url=_v3(url),
        project_name=tenant,
        ignore_regions=_list(section.get("ignore_regions", "")),
        policy=policy(where, section),
    )


def _v3(url: str) -> str:
    """Keystone v2.0 is gone: the same Keystone's v3."""
    base = url.rstrip("/")
    for suffix in ("/v2.0", "/v3"):
        base = base.removesuffix(suffix)
    return f"{base}/v3"


def policy(where: str, section: Any) -> Policy:
    selection: dict[str, Any] = {
        "forcesyncs": _list(section.get("forcesyncs", "")),
        "metadata_set": _list(section.get("metadata_set", "")),
    }
    if condition := section.get("metadata_condition", "").strip():
        selection |= translate(f"{where} metadata_condition", condition)
    try:
        return Policy(
            selection=Selection.model_validate(selection),
            conflicts=Conflicts(
                dontupdate=_list(section.get("dontupdate", "")),
                rename=_list(section.get("rename", "")),
                replace=_list(section.get("replace", "")),
            ),
            only_tenant_images=_bool(section.get("only_tenant_images", "true")),
            support_obsolete_images=_bool(section.get("support_obsolete_images", "true")),
            obsolete_syncprops=_list(section.get("obsolete_syncprops", "")),
            list_images_timeout_s=float(section.get("list_images_timeout", "30")),
        )
    except ValueError as error:
        raise ConfigError(where=where, problem=str(error).splitlines()[-1]) from None


def translate(where: str, text: str) -> dict[str, Any]:
    """A GlanceSync ``metadata_condition`` as Selection keys, or a ConfigError."""
    try:
        tree = ast.parse(" ".join(text.split()), mode="eval").body
    except SyntaxError:
        raise _refused(where, text) from None
    if isinstance(tree, ast.Constant) and isinstance(tree.value, bool):
        if tree.value:
            return {"condition": Condition(public=False, any_property=[])}
        return {"select": "forcesyncs"}
    clauses = (
        tree.values if isinstance(tree, ast.BoolOp) and isinstance(tree.op, ast.And) else [tree]
    )
    rule: dict[str, Any] = {"public": False, "any_property": [], "properties": {}}
    any_seen = False
    for clause in clauses:
        if _is_public(clause):
            rule["public"] = True
        elif _is_default_intersection(clause):
            if any_seen:
                raise _refused(where, text)
            rule["any_property"], any_seen = None, True
        elif (names := _has_any(clause)) is not None:
            if any_seen:
                raise _refused(where, text)
            rule["any_property"], any_seen = names, True
        elif (pair := _equals(clause)) is not None:
            rule["properties"][pair[0]] = pair[1]
        else:
            raise _refused(where, text)
    return {"condition": Condition.model_validate(rule)}


def _refused(where: str, text: str) -> ConfigError:
    return ConfigError(
        where=where,
        problem=f"{' '.join(text.split())!r} is Python the appliance does not evaluate; "
        f"write the rule in appliance.yaml's regions section instead: {DECLARATIVE}",
    )


def _attr(node: ast.AST, *path: str) -> bool:
    """``node`` is the dotted name ``path`` (e.g. image.user_properties)."""
    for name in reversed(path[1:]):
        if not (isinstance(node, ast.Attribute) and node.attr == name):
            return False
        node = node.value
    return isinstance(node, ast.Name) and node.id == path[0]


def _is_public(node: ast.AST) -> bool:
    return _attr(node, "image", "is_public")


def _props(node: ast.AST) -> bool:
    return _attr(node, "image", "user_properties")


def _is_default_intersection(node: ast.AST) -> bool:
    """``[not metadata_set or] metadata_set.intersection(image.user_properties)``."""
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or) and len(node.values) == 2:
        first, second = node.values
        if not (
            isinstance(first, ast.UnaryOp)
            and isinstance(first.op, ast.Not)
            and _attr(first.operand, "metadata_set")
        ):
            return False
        node = second
    return (
        isinstance(node, ast.Call)
        and _attr(node.func, "metadata_set", "intersection")
        and len(node.args) == 1
        and _props(node.args[0])
    )


def _has_any(node: ast.AST) -> list[str] | None:
    """``'a' in image.user_properties [or 'b' in image.user_properties ...]``."""
    parts = node.values if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or) else [node]
    names = []
    for part in parts:
        if not (
            isinstance(part, ast.Compare)
            and len(part.ops) == 1
            and isinstance(part.ops[0], ast.In)
            and _props(part.comparators[0])
            and isinstance(part.left, ast.Constant)
            and isinstance(part.left.value, str)
        ):
            return None
        names.append(part.left.value)
    return names


def _equals(node: ast.AST) -> tuple[str, str] | None:
    """``image.user_properties.get('k'[, None]) == 'v'`` or ``[...]['k'] == 'v'``."""
    if not (
        isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], ast.Eq)
    ):
        return None
    left, right = node.left, node.comparators[0]
    if not (isinstance(right, ast.Constant) and isinstance(right.value, str)):
        return None
    key: ast.AST | None = None
    if isinstance(left, ast.Call) and _attr(left.func, "image", "user_properties", "get"):
        if not 1 <= len(left.args) <= 2 or left.keywords:
            return None
        if len(left.args) == 2 and not (
            isinstance(left.args[1], ast.Constant) and left.args[1].value is None
        ):
            return None
        key = left.args[0]
    elif isinstance(left, ast.Subscript) and _props(left.value):
        key = left.slice
    if isinstance(key, ast.Constant) and isinstance(key.value, str):
        return key.value, right.value
    return None


def _list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _bool(text: str) -> bool:
    return text.strip().lower() in ("true", "yes", "1", "on")


def _int(path: Path, section: str, key: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(
            where=f"{path} [{section}] {key}", problem="give a whole number"
        ) from None
