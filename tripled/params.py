"""Typed, validated parameters: one model per section of params.yaml, checked once at the edge."""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import click
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ParamsError(click.ClickException, ValueError):
    """A params.yaml section is missing or invalid; the message names the key and the problem.

    A ClickException, so that a stage prints the message alone and exits with status 1.
    """


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(_Section):
    root: str = Field(description="'demo' (offline demo set) or a dataset folder")
    layout: Literal["paired", "clean"] = "paired"
    degradations: list[dict[str, Any]] = Field(default_factory=list)
    tile: int = Field(0, ge=0, description="cut images into tiles of this size; 0 = whole images")
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    max_pixels: int = Field(200_000_000, gt=0, description="decompression-bomb guard")
    strict: bool = Field(False, description="stop at the first unusable file instead of listing it in rejects.csv")
    seed: int = 0

    @field_validator("degradations")
    @classmethod
    def _specs(cls, v: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from tripled.degradations import DegradationSpec

        tasks = [DegradationSpec.from_dict(d).task for d in v]
        if len(set(tasks)) != len(tasks):
            raise ValueError(f"degradation task names must be unique, got {tasks}")
        return v

    def roots(self, prepared: Path = Path("data/prepared")) -> list[Path]:
        """The folders index paths may lead into: what prepare wrote, and the dataset itself."""
        return [prepared] if self.root == "demo" else [prepared, Path(self.root)]

    @model_validator(mode="after")
    def _clean_needs_degradations(self) -> "DataParams":
        if (self.root == "demo" or self.layout == "clean") and not self.degradations:
            raise ValueError("the demo set and layout 'clean' need at least one entry in data.degradations")
        return self


class FeatureParams(_Section):
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
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="embedding arithmetic: bf16 autocast (auto: on CUDA only; bf16: also on the CPU)")
    # How extraction runs; the results do not depend on these (except device, through precision auto).
    engine: Literal["local", "ray"] = Field("local", description="local processes, or Ray Data (RAY_ADDRESS)")
    workers: int = Field(0, ge=0, description="decoding processes of the local engine; 0 = all cores")
    actors: int = Field(0, ge=0, description="Ray embedding actors; 0 = one per GPU, or 1 without GPUs")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    gpu_decode: bool = Field(False, description="decode whole JPEGs on the GPU (torchvision) when on CUDA")
    unit_rows: int = Field(4096, ge=1, description="rows per cache unit: the work a killed run can lose")

    RUN_FIELDS: ClassVar[tuple[str, ...]] = ("engine", "workers", "actors", "device", "unit_rows")


LABELS = ("global_entropy", "local_entropy", "gradient")


class ScoreParams(_Section):
    label: Literal["global_entropy", "local_entropy", "gradient", "combined"] = "combined"
    heads: int = Field(8, ge=2)
    alpha: float = Field(1.0, gt=0, description="ridge regularisation of each head")
    clusters: int = Field(8, ge=1)
    loss_steps: int = Field(0, ge=0, description="warm-up training steps for the per-sample loss (EL2N-style); 0 = off")
    loss_warmup: float = Field(0.1, gt=0, le=1, description="share of the training samples the warm-up trains on")
    seed: int = 0


SELECT_METHODS = ("tripled", "random", "entropy_topk", "gradient_topk", "kcenter", "herding", "loss", "full")


class SelectParams(_Section):
    method: Literal[SELECT_METHODS] = "tripled"
    ratio: float = Field(0.02, description="fraction in (0, 1], or an absolute count > 1")
    stage1_fraction: float = Field(0.5, ge=0.0, le=1.0)
    trim: float = Field(0.02, ge=0.0, lt=0.5, description="hardest fraction dropped as outliers")
    uncertainty_weight: float = Field(0.5, ge=0.0, description="0 = ablation without uncertainty")
    stratify: bool = Field(True, description="tripled: budget per feature cluster; false = ablation, per task only")
    seed: int = 0

    @field_validator("ratio")
    @classmethod
    def _ratio(cls, v: float) -> float:
        if v <= 0 or (v > 1 and v != int(v)):
            raise ValueError(f"must be a fraction in (0, 1], or a whole count of samples above 1; got {v}")
        return v


class RefineParams(_Section):
    enabled: bool = True
    steps: int = Field(60, ge=0)
    lr: float = Field(1e-3, gt=0)
    distance: Literal["kl", "mmd"] = "kl"
    fidelity: float = Field(10.0, ge=0.0, description="weight of the L2 term keeping images close")
    width: int = Field(16, ge=1)
    blocks: int = Field(2, ge=1)
    batch_size: int = Field(64, ge=1)
    seed: int = 0


class ModelParams(_Section):
    arch: str = "nafnet"
    kwargs: dict[str, Any] = Field(default_factory=dict)


class TrainParams(_Section):
    steps: int = Field(3000, ge=1)
    batch_size: int = Field(32, ge=1)
    crop: int = Field(32, ge=8)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    stage1_fraction: float = Field(0.3, ge=0.0, le=1.0, description="share of steps on stage 1 only")
    stage2_mix: float = Field(0.5, ge=0.0, le=1.0, description="share of stage-2 samples in later batches")
    curriculum: bool = Field(True, description="false: every step draws from all samples (by weight), no stages")
    eval_every: int = Field(0, ge=0, description="PSNR on held-out tiles every this many steps; 0 = off")
    eval_samples: int = Field(64, ge=1, description="held-out tiles per task for that PSNR curve")
    loss_ema: float = Field(0.9, ge=0.0, lt=1.0)
    ema: float = Field(0.995, ge=0.0, lt=1.0, description="decay of the weight average used as the result; 0 = off")
    balance: Literal["task", "none"] = Field("task", description="task: L1 divided by the task's mean input error")
    checkpoint_every: int = Field(200, ge=1)
    log_every: int = Field(10, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    workers: int = Field(0, ge=0, description="loader processes reading crops while the device trains; 0 = inline")
    prefetch: int = Field(2, ge=1, description="batches each loader process prepares ahead")
    in_memory_mb: int = Field(4096, ge=0, description="a distilled set up to this size is read into memory once")
    channels_last: bool = Field(False, description="NHWC memory layout (faster convolutions on recent GPUs)")
    compile: bool = Field(False, description="torch.compile the model (needs a C++ compiler; slow first steps)")
    seed: int = 0


class EvalParams(_Section):
    tile: int = Field(512, ge=0, description="images larger than this are restored tile by tile; 0 = whole")
    overlap: int = Field(64, ge=0, description="pixels shared by neighbouring tiles, blended")
    device: Literal["auto", "cpu", "cuda"] = "cpu"

    @model_validator(mode="after")
    def _overlap_below_tile(self) -> "EvalParams":
        if self.tile and self.overlap >= self.tile:
            raise ValueError(f"overlap ({self.overlap}) must be smaller than tile ({self.tile})")
        return self


S = TypeVar("S", bound=_Section)


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


def load_section(cls: type[S], name: str, path: str | Path = "params.yaml") -> S:
    """Validate section `name` of the params file as `cls`, with errors that name each bad key."""
    section = read_params(path).get(name)
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise ParamsError(f"{path}: section '{name}' must be a mapping")
    try:
        return cls(**section)
    except ValidationError as e:
        lines = [f"{'.'.join([name, *map(str, err['loc'])])}: {_message(cls, err)}" for err in e.errors()]
        raise ParamsError(f"invalid params in {path}:\n  " + "\n  ".join(lines)) from None


def _message(cls: type[_Section], err: dict) -> str:
    if err["type"] == "extra_forbidden" and len(err["loc"]) == 1:  # a typo shows the keys it could have been
        return f"unknown key (known keys: {', '.join(cls.model_fields)})"
    if err["type"] == "missing":
        return "required key is missing"
    return err["msg"].removeprefix("Value error, ")
