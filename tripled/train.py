"""Training a restorer on the distilled set with the two-stage curriculum; checkpoints and resume."""
from __future__ import annotations

import os
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from tripled.distilled import DistilledSet
from tripled.models import build_model
from tripled.params import ModelParams, TrainParams


class CurriculumSampler:
    """Stage 1: easy samples only. Stage 2: a `mix` share of each batch from the hard samples,
    drawn in proportion to weight x the model's running loss on them; the rest from all samples."""

    def __init__(self, stage: np.ndarray, weight: np.ndarray, switch_step: int, mix: float, ema: float):
        self.stage, self.weight = np.asarray(stage), np.asarray(weight, np.float64)
        self.switch_step, self.mix, self.ema = switch_step, mix, ema
        self.running = np.full(len(stage), np.nan)

    def stage_at(self, step: int) -> int:
        return 1 if step < self.switch_step else 2

    @staticmethod
    def _draw(rng: np.random.Generator, rows: np.ndarray, w: np.ndarray, n: int) -> np.ndarray:
        return rows[rng.choice(len(rows), size=n, p=w / w.sum())] if n else rows[:0]

    def draw(self, step: int, n: int, rng: np.random.Generator) -> np.ndarray:
        every = np.arange(len(self.stage))
        easy, hard = every[self.stage == 1], every[self.stage == 2]
        if self.stage_at(step) == 1 and len(easy):
            return self._draw(rng, easy, self.weight[easy], n)
        n_hard = int(rng.binomial(n, self.mix)) if len(hard) else 0
        known = self.running[~np.isnan(self.running)]
        loss = np.where(np.isnan(self.running), known.mean() if len(known) else 1.0, self.running)
        return np.concatenate([self._draw(rng, hard, self.weight[hard] * loss[hard] + 1e-12, n_hard),
                               self._draw(rng, every, self.weight, n - n_hard)])

    def update(self, idx: np.ndarray, losses: np.ndarray) -> None:
        for i, v in zip(idx, losses):
            old = self.running[i]
            self.running[i] = v if np.isnan(old) else self.ema * old + (1 - self.ema) * v


def balance_weights(ds: DistilledSet) -> np.ndarray:
    """Per-sample loss weight 1 / (mean input L1 of its task): haze or low-light errors are ten times
    blur or JPEG ones, and unbalanced they decide the whole model."""
    err = np.array([np.abs(gt.astype(np.float32) - lq).mean() / 255.0 for gt, lq in map(ds.pair, range(len(ds)))])
    task_err = ds.manifest.assign(err=err).groupby("task")["err"].transform("mean").to_numpy()
    w = 1.0 / np.maximum(task_err, 1e-3)
    return (w / w.mean()).astype(np.float32)


def pick_device(choice: str) -> torch.device:
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def _batch(ds: DistilledSet, idx: np.ndarray, size: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    gts, lqs = [], []
    for i in idx:
        h, w = int(ds.manifest["height"].iat[i]), int(ds.manifest["width"].iat[i])
        y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        gt, lq = ds.crop(int(i), y, x, size)
        if rng.random() < 0.5:
            gt, lq = gt[:, ::-1], lq[:, ::-1]
        if rng.random() < 0.5:
            gt, lq = gt[::-1], lq[::-1]
        gts.append(gt)
        lqs.append(lq)

    def stack(images):
        return torch.from_numpy(np.ascontiguousarray(np.stack(images))).permute(0, 3, 1, 2).float().div(255.0)

    return stack(gts), stack(lqs)


def _save_atomic(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)  # a crash mid-write never leaves a checkpoint that reads as complete


def train(ds: DistilledSet, mp: ModelParams, p: TrainParams, checkpoint: Path, fingerprint: str,
          validate: Callable[[torch.nn.Module], float] | None = None) -> tuple[torch.nn.Module, list[dict]]:
    """Train for p.steps, resuming from `checkpoint` when it was written for the same fingerprint.
    `validate(model) -> PSNR` is recorded as `psnr` in the curve every p.eval_every steps (at log steps)."""
    device = pick_device(p.device)
    torch.manual_seed(p.seed)
    rng = np.random.default_rng(p.seed)
    model = build_model(mp.arch, **mp.kwargs).to(device)
    # The average of recent weights is the result: steadier than the last step on a tiny set.
    average = torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(p.ema)) if p.ema else None
    opt = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=p.steps, eta_min=p.lr * 0.01)
    m = ds.manifest
    # No curriculum (ablation): stage 2 from the first step, drawing from all samples by weight only.
    switch, mix = (int(round(p.stage1_fraction * p.steps)), p.stage2_mix) if p.curriculum else (0, 0.0)
    sampler = CurriculumSampler(m["stage"].to_numpy(), m["weight"].to_numpy(), switch, mix, p.loss_ema)
    size = min(p.crop, int(m["height"].min()), int(m["width"].min()))
    start, curve, window = 0, [], []

    if checkpoint.is_file():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        if state["fingerprint"] == fingerprint:
            model.load_state_dict(state["model"])
            if average is not None:
                average.load_state_dict(state["average"])
            opt.load_state_dict(state["opt"])
            sched.load_state_dict(state["sched"])
            rng.bit_generator.state = state["rng"]
            torch.set_rng_state(state["torch_rng"])
            sampler.running = state["running"].numpy()
            start, curve, window = state["step"], state["curve"], state["window"]
            print(f"train: resumed from {checkpoint} at step {start}")

    checkpoint.parent.mkdir(parents=True, exist_ok=True)  # a DVC output even before the first save
    weights = balance_weights(ds) if p.balance == "task" else np.ones(len(ds), np.float32)
    task_weight = torch.from_numpy(weights).to(device)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    model.train()
    for step in tqdm(range(start, p.steps), desc="train", unit="step", initial=start, total=p.steps):
        idx = sampler.draw(step, p.batch_size, rng)
        gt, lq = (t.to(device, non_blocking=True) for t in _batch(ds, idx, size, rng))
        with amp:
            out = model(lq)
        per_sample = (out.float() - gt).abs().mean((1, 2, 3)) * task_weight[idx]
        loss = per_sample.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if average is not None:
            average.update_parameters(model)
        sampler.update(idx, per_sample.detach().cpu().numpy())
        window.append(loss.item())
        if (step + 1) % p.log_every == 0 or step + 1 == p.steps:
            curve.append(dict(step=step + 1, loss=float(np.mean(window)), lr=sched.get_last_lr()[0],
                              stage=sampler.stage_at(step)))
            window = []
            if validate is not None and p.eval_every and (step + 1) % p.eval_every == 0:
                current = average.module if average is not None else model
                curve[-1]["psnr"] = float(validate(current.eval()))
                current.train()
        if (step + 1) % p.checkpoint_every == 0 and step + 1 < p.steps:
            _save_atomic(dict(fingerprint=fingerprint, step=step + 1, model=model.state_dict(),
                              average=average.state_dict() if average is not None else {},
                              opt=opt.state_dict(), sched=sched.state_dict(), rng=rng.bit_generator.state,
                              torch_rng=torch.get_rng_state(), running=torch.from_numpy(sampler.running),
                              curve=curve, window=window), checkpoint)
    result = average.module if average is not None else model
    return result.eval().cpu(), curve
