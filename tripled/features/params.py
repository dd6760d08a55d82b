"""Params of the extract stage (section `features`)."""
from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from tripled.params import PRECISION_HELP, Precision, Section


class FeatureParams(Section):
    backbone: str = "vit_tiny_patch16_224"
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    weights: str = Field("scratch", description="'scratch', 'timm' or a path to a weights file")
    view: Literal["gt", "lq"] = "gt"
    thumb_size: int = Field(128, ge=16)
    batch_size: int = Field(64, ge=1)
    label_samples: int = Field(400, ge=2)
    scratch_steps: int = Field(100, ge=0)
    scratch_lr: float = Field(5e-4, gt=0)
    seed: int = 0
    precision: Precision = Field("auto", description=PRECISION_HELP)
    # How extraction runs; the results do not depend on these (except device, through precision auto).
    engine: Literal["local", "ray"] = Field("local", description="local processes, or Ray Data (RAY_ADDRESS)")
    workers: int = Field(0, ge=0, description="decoding processes of the local engine; 0 = all cores")
    actors: int = Field(0, ge=0, description="Ray embedding actors; 0 = one per GPU, or 1 without GPUs")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    gpu_decode: bool = Field(False, description="decode whole JPEGs on the GPU (torchvision) when on CUDA")
    unit_rows: int = Field(4096, ge=1, description="rows per cache unit: the work a killed run can lose")

    RUN_FIELDS: ClassVar[tuple[str, ...]] = ("engine", "workers", "actors", "device", "unit_rows")

    def result_params(self) -> dict:
        """The params that shape the results (not how the work is run)."""
        return {k: v for k, v in self.model_dump().items() if k not in self.RUN_FIELDS}
