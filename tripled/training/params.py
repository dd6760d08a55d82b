"""Params of the train stage (sections `model` and `train`)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from tripled.params import PRECISION_HELP, Precision, Section
from tripled.training.archs import ArchName


class ModelParams(Section):
    arch: ArchName = "nafnet"
    kwargs: dict[str, Any] = Field(default_factory=dict)


class TrainParams(Section):
    steps: int = Field(3000, ge=1, description="training length, counted as steps_per says")
    steps_per: Literal["run", "task"] = Field("run", description="run: steps in all; task: steps times the "
                                              "restorer's tasks, so each task gets as many batches")
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
    warmup_steps: int = Field(0, ge=0, description="linear learning-rate warm-up before the cosine decay; 0 = off")
    grad_clip: float = Field(0.0, ge=0.0, description="largest gradient L2 norm per step; 0 = off")
    keep_best: bool = Field(False, description="result: the weight average at the eval step that scored best on "
                            "training tiles the distilled set left out (needs eval_every); false: the last")
    ema: float = Field(0.995, ge=0.0, lt=1.0, description="decay of the weight average used as the result; 0 = off")
    balance: Literal["task", "none"] = Field("task", description="task: L1 divided by the task's mean input error")
    balance_power: float = Field(1.0, ge=0.0, le=2.0,
                                 description="task balance: L1 divided by that error to this power (0 = no balance)")
    checkpoint_every: int = Field(200, ge=1)
    log_every: int = Field(10, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Precision = Field("auto", description=PRECISION_HELP)
    workers: int = Field(0, ge=0, description="loader processes reading crops while the device trains; 0 = inline")
    prefetch: int = Field(2, ge=1, description="batches each loader process prepares ahead")
    in_memory_mb: int = Field(4096, ge=0, description="a distilled set up to this size is read into memory once")
    channels_last: bool = Field(False, description="NHWC memory layout (faster convolutions on recent GPUs)")
    compile: bool = Field(False, description="torch.compile the model (needs a C++ compiler; slow first steps)")
    seed: int = 0

    def for_tasks(self, tasks: int) -> TrainParams:
        """These params with `steps` in all for a restorer of `tasks` tasks (and steps_per: run)."""
        if self.steps_per == "run":
            return self
        return self.model_copy(update=dict(steps=self.steps * tasks, steps_per="run"))

    @model_validator(mode="after")
    def _keep_best_needs_evals(self) -> TrainParams:
        if self.keep_best and not self.eval_every:
            raise ValueError("train.keep_best judges the weights every train.eval_every steps: set eval_every > 0")
        return self
