"""Each service's settings: the contract between the render step and the service.

The supervisor builds one of these models per service from appliance.yaml
(``fedcloud_appliance.render``) and writes it as JSON into the rendered
volume; the service loads that file through the same model. A field added,
renamed or retyped here is therefore a type error (mypy, ``make lint``) in
both places at once, and a file that does not match is refused at start
with every problem named, never half-read.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from fedcloud_common.errors import ConfigError
from fedcloud_common.files import write_atomically

SettingsT = TypeVar("SettingsT", bound=BaseModel)


def load(model: type[SettingsT], path: Path) -> SettingsT:
    """The settings in ``path``; a ConfigError naming the file and each bad key."""
    try:
        text = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            where=str(path), problem="does not exist; is the render step done (appliance render)?"
        ) from None
    except OSError as error:
        raise ConfigError(where=str(path), problem=error.strerror or str(error)) from None
    try:
        return model.model_validate_json(text)
    except ValidationError as error:
        raise ConfigError(where=str(path), problem=describe(error)) from None


def describe(error: ValidationError) -> str:
    """Every problem of a validation error, as ``dotted.key: message``, joined."""
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "not a known setting (written by another version of the appliance?)"
        problems.append(f"{key}: {message}")
    return "; ".join(problems)


def write(settings: BaseModel, path: Path) -> None:
    """Write ``settings`` atomically (0644: they hold file paths, never secrets)."""
    write_atomically(path, settings.model_dump_json(indent=2, exclude_none=True) + "\n")
