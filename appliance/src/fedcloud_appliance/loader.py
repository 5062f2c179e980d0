"""Read and validate the appliance file, with errors an operator can act on.

Each problem is reported on its own line as ``<dotted.key>: <what is wrong>;
<how to fix it>``, all problems at once, so one edit-and-check round fixes
the whole file. Secret files named by the config are checked here too
(present, private), but never read into the error text. A voms.json-style
VO map (``bdii.vo_map_file``) is read here and merged into ``bdii.vos``.
"""

from __future__ import annotations

import difflib
import logging
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from fedcloud_appliance import vomap
from fedcloud_appliance.config import DEFAULT_PATH, ApplianceConfig, VoMapping, glancesync_ini
from fedcloud_common import errors
from fedcloud_common.errors import SecretFileError
from fedcloud_common.secrets import read_secret

PATH_ENV = "FEDCLOUD_APPLIANCE_CONFIG"
LOG = logging.getLogger(__name__)


class ConfigError(errors.ConfigError):
    """Every problem of the appliance file at once, one per line."""

    msg_fmt = "{path}: {count} problem(s)\n{problems}"

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            path=path, count=len(problems), problems="\n".join(f"  {p}" for p in problems)
        )


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    # Absolute, so the secrets directory beside it compares with absolute paths.
    return Path(explicit or os.environ.get(PATH_ENV) or DEFAULT_PATH).absolute()


def load(path: str | os.PathLike[str] | None = None, check_files: bool = True) -> ApplianceConfig:
    """Load the file, validate it, and check the files it names.

    Files are only read with ``check_files``: without it (``status``),
    ``bdii.vos`` holds appliance.yaml's entries alone.
    """
    path = config_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            path, [f"file not found; write it (see the README's example) or set {PATH_ENV}"]
        ) from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader
    except _DuplicateKeyError as error:
        raise ConfigError(path, [str(error)]) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        raise ConfigError(path, [f"not valid YAML at {where}: {error}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError(path, ["the file must be a YAML mapping with at least 'site'"])
    try:
        config = ApplianceConfig.model_validate(raw)
    except ValidationError as error:
        problems = [_describe(e) for e in error.errors()]
        raise ConfigError(path, problems + _hidden_problems(raw, error, problems)) from None
    if check_files:
        # The services mount only this directory (beside the config file).
        problems = _check_files(config, path.parent / "secrets")
        config, vo_map_problems = _with_vo_map(config, path.parent)
        problems += vo_map_problems + _lists_without_a_project(config)
        if problems:
            raise ConfigError(path, problems)
    return config


class _DuplicateKeyError(yaml.YAMLError):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML with each key once per mapping: a repeated key would silently win."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            line = key_node.start_mark.line + 1
            if key in seen:
                raise _DuplicateKeyError(
                    f"{key}: given twice (lines {seen[key]} and {line}); the second would "
                    "silently replace the first: keep one"
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _hidden_problems(raw: dict[str, Any], error: ValidationError, known: list[str]) -> list[str]:
    """Whole-file checks pydantic skips when any key is wrong, found all the same.

    The checks across sections (credentials for every enabled service, ...)
    run only on a file whose keys are all valid, so they would show up one
    edit later. They are run again with each broken section cut down to
    whether it is enabled; not when the site or the shared credentials are
    broken, whose fix may change the answer.
    """
    broken = {str(e["loc"][0]) for e in error.errors() if e["loc"]}
    if broken & {"site", "openstack"}:
        return []
    trimmed = dict(raw)
    for section in broken:
        value = raw.get(section)
        enabled = value.get("enabled") if isinstance(value, dict) else None
        trimmed[section] = {"enabled": enabled} if isinstance(enabled, bool) else {}
    try:
        ApplianceConfig.model_validate(trimmed)
    except ValidationError as second:
        found = [_describe(e) for e in second.errors() if not e["loc"]]
        return [problem for problem in found if problem not in known]
    return []


def _dotted(location: tuple[int | str, ...]) -> str:
    key = ""
    for part in location:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key or "(top level)"


def _describe(error: dict[str, Any]) -> str:
    location = tuple(
        part
        for part in error["loc"]
        if not (isinstance(part, str) and part.startswith("function-"))
    )
    key = _dotted(location)
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{key}: not a known key; {_suggestion(location)}"
    if kind == "missing":
        return f"{key}: required; add it"
    message = str(error["msg"]).removeprefix("Value error, ")
    given = error.get("input")
    if kind.startswith("url"):
        return f"{key}: {message} (got {given!r}); write a full https:// URL"
    if kind in ("literal_error", "enum") or kind.endswith("_parsing") or kind.endswith("_type"):
        return f"{key}: {message} (got {given!r}); fix the value"
    return f"{key}: {message}"


def _suggestion(location: tuple[int | str, ...]) -> str:
    """Did-you-mean for a misspelt key, from the model's own field names."""
    model: type[BaseModel] | None = ApplianceConfig
    for part in location[:-1]:
        if model is None or isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        model = _model_of(field.annotation) if field else None
    if model is None:
        return "remove it"
    known = list(model.model_fields)
    close = difflib.get_close_matches(str(location[-1]), known, n=1)
    hint = f"did you mean '{close[0]}'?" if close else "remove it or fix its name"
    return f"{hint} (known here: {', '.join(known)})"


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model inside ``X``, ``X | None``, ``list[X]`` or ``dict[str, X]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found:
            return found
    return None


def _check_regions(config: ApplianceConfig) -> list[str]:
    """The GlanceSync file, read as the render step will (passwords stay unread)."""
    regions = config.regions
    if not regions.enabled or regions.glancesync_conf is None:
        return []
    try:
        glancesync_ini.read(regions.glancesync_conf)
    except errors.ConfigError as error:
        return [f"regions.glancesync_conf: {error}"]
    return []


def _check_files(config: ApplianceConfig, secrets_dir: Path) -> list[str]:
    problems = []
    store = config.bdii.object_store
    if store and store.secret_access_key_file:
        problems += _check_secret(
            "bdii.object_store.secret_access_key_file", store.secret_access_key_file
        )
    for key, auth in (
        ("openstack", config.openstack),
        ("images.openstack", config.images.openstack),
        ("bdii.openstack", config.bdii.openstack),
        ("accounting.openstack", config.accounting.openstack),
        ("bdii.object_store.openstack", store.openstack if store else None),
        (
            "regions.master.openstack",
            config.regions.master.openstack if config.regions.master else None,
        ),
        *(
            (f"regions.targets.{name}.openstack", target.openstack)
            for name, target in config.regions.targets.items()
        ),
    ):
        if auth is None:
            continue
        for secret in auth.secret_files():
            problems += _check_secret(key, secret)
            if not secret.is_relative_to(secrets_dir):
                problems.append(
                    f"{key}: {secret} must be in {secrets_dir}/, the directory the "
                    "appliance's services mount; move it there"
                )
        if auth.clouds_yaml and not auth.clouds_yaml.is_file():
            problems.append(f"{key}.clouds_yaml: {auth.clouds_yaml} does not exist")
        if auth.ca_bundle and not auth.ca_bundle.is_file():
            problems.append(f"{key}.ca_bundle: {auth.ca_bundle} does not exist")
    if config.images.enabled:
        for index, image_list in enumerate(config.images.lists):
            if image_list.token_file:
                problems += _check_secret(
                    f"images.lists[{index}].token_file", image_list.token_file
                )
        if config.images.lists_file and not config.images.lists_file.is_file():
            problems.append(f"images.lists_file: {config.images.lists_file} does not exist")
    problems += _check_regions(config)
    if config.outbound.ca_bundle and not config.outbound.ca_bundle.is_file():
        problems.append(
            f"outbound.ca_bundle: {config.outbound.ca_bundle} does not exist; put the PEM "
            "file in the config directory or remove the key"
        )
    if config.accounting.enabled:
        sender = config.accounting.sender
        if sender.ca_bundle and not sender.ca_bundle.is_file():
            problems.append(f"accounting.sender.ca_bundle: {sender.ca_bundle} does not exist")
        if not sender.cert.is_file():
            problems.append(
                f"accounting.sender.cert: {sender.cert} does not exist; install the host "
                "certificate there or point cert at it"
            )
        problems += _check_secret("accounting.sender.key", sender.key)
        if sender.token_file:
            problems += _check_secret("accounting.sender.token_file", sender.token_file)
        if sender.stomp_password_file:
            problems += _check_secret(
                "accounting.sender.stomp_password_file", sender.stomp_password_file
            )
        if sender.server_cert and not sender.server_cert.is_file():
            problems.append(
                f"accounting.sender.server_cert: {sender.server_cert} does not exist; put the "
                "endpoint's certificate in the config directory or remove the key"
            )
    return problems


def _lists_without_a_project(config: ApplianceConfig) -> list[str]:
    """A list for a VO needs a project to share its images with."""
    if not config.images.enabled:
        return []
    return [
        f"images.lists[{index}]: VO {image_list.vo!r} has no project: give the list a "
        f"project, or map the VO in bdii.vos ({image_list.vo}: {{project: ...}}) or "
        "bdii.vo_map_file"
        for index, image_list in enumerate(config.images.lists)
        if image_list.vo and not image_list.project and image_list.vo not in config.bdii.vos
    ]


def _check_secret(key: str, path: Path) -> list[str]:
    try:
        read_secret(path)
    except SecretFileError as error:
        return [f"{key}: {error}"]
    return []


def _with_vo_map(config: ApplianceConfig, config_dir: Path) -> tuple[ApplianceConfig, list[str]]:
    """The config with bdii.vo_map_file's VOs added to bdii.vos.

    appliance.yaml's entries win: the file is shared with other tools
    (Keystone-VOMS, cASO) and may rightly differ, so a VO mapped elsewhere
    there is a warning, not an error. Of a VO's several projects, the first
    is used (one per VO, as the BDII publishes it), also with a warning.
    """
    bdii = config.bdii
    path = bdii.vo_map_file
    if path is None or not (bdii.enabled or config.images.enabled):
        return config, []
    if not path.is_file():
        return config, [
            f"bdii.vo_map_file: {path} does not exist; put the file in "
            f"{config_dir.absolute()}/, the host directory the appliance's containers "
            "mount, and point vo_map_file at it"
        ]
    try:
        from_file = vomap.read(path)
    except vomap.VoMapError as error:
        return config, [f"bdii.vo_map_file: {problem}" for problem in error.problems]
    vos = dict(bdii.vos)
    for vo, projects in from_file.items():
        given = bdii.vos.get(vo)
        if given is None:
            vos[vo] = VoMapping(project=projects[0])
            if len(projects) > 1:
                LOG.warning(
                    "bdii.vo_map_file: VO %r has %d projects (%s); the appliance uses the "
                    "first, %r; to choose another, set bdii.vos.%s.project",
                    vo,
                    len(projects),
                    ", ".join(projects),
                    projects[0],
                    vo,
                )
        elif given.project not in projects:
            LOG.warning(
                "bdii.vos.%s: project %r is used, not %s from bdii.vo_map_file; make them "
                "agree to silence this warning",
                vo,
                given.project,
                ", ".join(repr(p) for p in projects),
            )
    return config.model_copy(update={"bdii": bdii.model_copy(update={"vos": vos})}), []
