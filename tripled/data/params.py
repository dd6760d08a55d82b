"""Params of the prepare stage (section `data`)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from tripled.data.degradations import DegradationSpec
from tripled.data.layouts import pairing_rules
from tripled.params import Section


class DataParams(Section):
    root: str = Field(description="'demo' (offline demo set) or a dataset folder")
    layout: Literal["paired", "clean"] = "paired"
    pairing: str | dict[str, str] = Field(
        "same", description="paired: how a degraded file names its clean partner: same, prefix, suffix, a regex "
                            "with a group (?P<key>...), or {lq: regex, gt: regex}")
    degradations: list[dict[str, Any]] = Field(default_factory=list)
    tile: int = Field(0, ge=0, description="cut images into tiles of this size; 0 = whole images")
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    max_pixels: int = Field(200_000_000, gt=0, description="decompression-bomb guard")
    strict: bool = Field(False, description="stop at the first unusable file instead of listing it in rejects.csv")
    seed: int = 0

    @field_validator("degradations")
    @classmethod
    def _specs(cls, v: list[dict[str, Any]]) -> list[dict[str, Any]]:
        tasks = [DegradationSpec.from_dict(d).task for d in v]
        if len(set(tasks)) != len(tasks):
            raise ValueError(f"degradation task names must be unique, got {tasks}")
        return v

    @field_validator("pairing")
    @classmethod
    def _pairing(cls, v: str | dict[str, str]) -> str | dict[str, str]:
        pairing_rules(v)
        return v

    @model_validator(mode="after")
    def _clean_needs_degradations(self) -> DataParams:
        if (self.root == "demo" or self.layout == "clean") and not self.degradations:
            raise ValueError("the demo set and layout 'clean' need at least one entry in data.degradations")
        return self
