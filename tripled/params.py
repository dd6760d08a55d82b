"""Typed params: one pydantic model per section of params.yaml, each defined beside the code it
configures, read and checked once at the edge (the stage script) with errors that name each bad key."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from tripled.errors import ParamsError


class Section(BaseModel):
    """A section of params.yaml: unknown keys are refused, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


S = TypeVar("S", bound=BaseModel)
# The arithmetic of a stage's network (tripled.device.use_bf16 applies it).
Precision = Literal["auto", "fp32", "bf16"]
PRECISION_HELP = "bf16 autocast, or fp32 (auto: bf16 on CUDA and on CPUs with AVX512-BF16 or AMX)"


def read_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"params file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ParamsError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: top level must be a mapping of sections")
    return data


def load_section(cls: type[S], name: str, path: str | Path = "params.yaml", *, key: str | None = None,
                  overrides: dict | None = None) -> S:
    """Validate section `name` of the params file (its entry `key`, if given) as `cls`, with `overrides`
    on top, with errors that name each bad key."""
    section = read_params(path).get(name)
    where = [name] if key is None else [name, key]
    if key is not None:
        section = (section or {}).get(key)
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise ParamsError(f"{path}: section '{'.'.join(where)}' must be a mapping")
    try:
        return cls(**{**section, **(overrides or {})})
    except ValidationError as e:
        lines = [f"{'.'.join([*where, *map(str, err['loc'])])}: {_message(cls, err)}" for err in e.errors()]
        raise ParamsError(f"invalid params in {path}:\n  " + "\n  ".join(lines)) from None


def _message(cls: type[BaseModel], err: dict) -> str:
    if err["type"] == "extra_forbidden" and len(err["loc"]) == 1:  # a typo shows the keys it could have been
        return f"unknown key (known keys: {', '.join(cls.model_fields)})"
    if err["type"] == "missing":
        return "required key is missing"
    return err["msg"].removeprefix("Value error, ")
