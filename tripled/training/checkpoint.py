"""Everything a training run carries from step to step, saved as a checkpoint and resumed exactly."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tripled.publish import atomic
from tripled.training.curriculum import CurriculumSampler


@dataclass
class TrainState:
    """Model, weight average, optimizer, schedule, random draws, curriculum and logs of a run at `step`.

    `pending`: batch plans drawn but not yet trained on (by step), so a resumed run replays them.
    `best`: the result's weights at the best-judged eval step so far, and `best_score` that judgement."""

    model: nn.Module
    average: torch.optim.swa_utils.AveragedModel | None
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    rng: np.random.Generator
    sampler: CurriculumSampler
    step: int = 0
    curve: list[dict] = field(default_factory=list)
    window: list[float] = field(default_factory=list)
    pending: dict[int, np.ndarray] = field(default_factory=dict)
    best: dict[str, torch.Tensor] | None = None
    best_score: float = float("-inf")

    def save(self, path: Path, fingerprint: str) -> None:
        state = dict(fingerprint=fingerprint, step=self.step, model=self.model.state_dict(),
                     average=self.average.state_dict() if self.average is not None else {},
                     opt=self.opt.state_dict(), sched=self.sched.state_dict(), rng=self.rng.bit_generator.state,
                     torch_rng=torch.get_rng_state(), running=torch.from_numpy(self.sampler.running),
                     pending={str(k): torch.from_numpy(v) for k, v in self.pending.items()},
                     curve=self.curve, window=self.window, best=self.best or {}, best_score=self.best_score)
        with atomic(path) as tmp:
            torch.save(state, tmp)

    def resume(self, path: Path, fingerprint: str) -> bool:
        """Load the checkpoint at `path` if one was written for this fingerprint (params, data, code)."""
        if not path.is_file():
            return False
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state["fingerprint"] != fingerprint:
            return False
        self.model.load_state_dict(state["model"])
        if self.average is not None:
            self.average.load_state_dict(state["average"])
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        self.sampler.running = state["running"].numpy()
        self.step, self.curve, self.window = state["step"], state["curve"], state["window"]
        self.pending = {int(k): v.numpy() for k, v in state["pending"].items()}
        self.best, self.best_score = state["best"] or None, state["best_score"]
        return True

    @property
    def result(self) -> nn.Module:
        """The weight average when kept (steadier than the last step on a tiny set), else the model."""
        return self.average.module if self.average is not None else self.model
