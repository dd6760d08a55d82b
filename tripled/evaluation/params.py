"""Params of the evaluate stage (section `evaluate`)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from tripled.evaluation.unseen import chain_name, parse_chain
from tripled.params import PRECISION_HELP, Precision, Section


class EvalParams(Section):
    tile: int = Field(512, ge=0, description="images larger than this are restored tile by tile; 0 = whole")
    overlap: int = Field(64, ge=0, description="pixels shared by neighbouring tiles, blended")
    device: Literal["auto", "cpu", "cuda"] = "cpu"
    precision: Precision = Field("auto", description=PRECISION_HELP)
    unseen: list[dict[str, Any] | list[dict[str, Any]]] = Field(
        default_factory=list, description="degradations never trained on, applied to the clean test images "
                                          "(a list applies several in turn); scored apart")
    seed: int = 0

    @field_validator("unseen")
    @classmethod
    def _unseen(cls, v: list) -> list:
        names = [chain_name(parse_chain(entry)) for entry in v]
        if len(set(names)) != len(names):
            raise ValueError(f"unseen degradations need distinct names, got {names}")
        return v

    @model_validator(mode="after")
    def _overlap_below_tile(self) -> EvalParams:
        if self.tile and self.overlap >= self.tile:
            raise ValueError(f"overlap ({self.overlap}) must be smaller than tile ({self.tile})")
        return self
