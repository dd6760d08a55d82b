"""Training a restorer on the distilled set with the two-stage curriculum; checkpoints and resume;
one process or several under torchrun (DDP)."""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from tripled import distributed, models
from tripled.distilled import DistilledSet
from tripled.distributed import World, pick_device
from tripled.io import file_hash
from tripled.models import build_model
from tripled.params import ModelParams, TrainParams


class CurriculumSampler:
    """Stage 1: easy samples only. Stage 2: a `mix` share of each batch from the hard samples,
    drawn in proportion to weight x the model's running loss on them; the rest from all samples.

    The loss only re-weights samples within their task: each task keeps its share of the hard draws
    (its share of their weight). Across tasks the balanced loss still differs several-fold (haze stays
    far from clean while noise is nearly solved), and left free it starved the tasks learnt first."""

    def __init__(self, stage: np.ndarray, weight: np.ndarray, switch_step: int, mix: float, ema: float,
                 task: np.ndarray | None = None):
        self.stage, self.weight = np.asarray(stage), np.asarray(weight, np.float64)
        self.switch_step, self.mix, self.ema = switch_step, mix, ema
        self.task = np.unique(task, return_inverse=True)[1] if task is not None else np.zeros(len(stage), np.int64)
        self.running = np.full(len(stage), np.nan)

    def stage_at(self, step: int) -> int:
        return 1 if step < self.switch_step else 2

    @staticmethod
    def _draw(rng: np.random.Generator, rows: np.ndarray, w: np.ndarray, n: int) -> np.ndarray:
        return rows[rng.choice(len(rows), size=n, p=w / w.sum())] if n else rows[:0]

    def hard_weights(self, hard: np.ndarray) -> np.ndarray:
        """Draw weights of the hard rows: weight x running loss, rescaled so each task keeps its weight mass."""
        known = self.running[~np.isnan(self.running)]
        loss = np.where(np.isnan(self.running), known.mean() if len(known) else 1.0, self.running)[hard]
        w, task = self.weight[hard], self.task[hard]
        lossy = w * loss + 1e-12
        return lossy * (np.bincount(task, w) / np.maximum(np.bincount(task, lossy), 1e-300))[task]

    def draw(self, step: int, n: int, rng: np.random.Generator) -> np.ndarray:
        every = np.arange(len(self.stage))
        easy, hard = every[self.stage == 1], every[self.stage == 2]
        if self.stage_at(step) == 1 and len(easy):
            return self._draw(rng, easy, self.weight[easy], n)
        n_hard = int(rng.binomial(n, self.mix)) if len(hard) else 0
        return np.concatenate([self._draw(rng, hard, self.hard_weights(hard), n_hard) if n_hard else hard[:0],
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


def plan_crops(ds: DistilledSet, idx: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """One row per sample: (index, top, left, flip left-right, flip up-down)."""
    rows = []
    for i in idx:
        h, w = int(ds.manifest["height"].iat[i]), int(ds.manifest["width"].iat[i])
        y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        rows.append((int(i), y, x, rng.random() < 0.5, rng.random() < 0.5))
    return np.array(rows, np.int64).reshape(-1, 5)


class CropSet(torch.utils.data.Dataset):
    """Loader side: reads the crops of a plan (only the chunks they cover when the set is on disk)
    and returns uint8 NHWC batches; the float conversion happens on the training device."""

    def __init__(self, ds: DistilledSet, size: int):
        self.ds, self.size = ds, size

    def __getitem__(self, plan: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        gts, lqs = [], []
        for i, y, x, flip_lr, flip_ud in plan:
            gt, lq = self.ds.crop(int(i), int(y), int(x), self.size)
            if flip_lr:
                gt, lq = gt[:, ::-1], lq[:, ::-1]
            if flip_ud:
                gt, lq = gt[::-1], lq[::-1]
            gts.append(gt)
            lqs.append(lq)
        return tuple(torch.from_numpy(np.ascontiguousarray(np.stack(images))) for images in (gts, lqs))


class BatchPlanner:
    """Draws each step's global batch plan (curriculum rows, crops, flips) in the training process,
    where the running losses live, and yields this rank's contiguous share of it to the loader.

    The loader asks for plans a fixed number of steps ahead (its prefetch depth), so a draw sees
    the losses of the steps trained so far: deterministic for fixed params. Plans drawn but not yet
    trained on (`pending`, by step) go into the checkpoint, so a resumed run replays them exactly.
    """

    def __init__(self, ds: DistilledSet, sampler: CurriculumSampler, size: int, batch: int,
                 rng: np.random.Generator, start: int, steps: int, world: World, pending: dict[int, np.ndarray]):
        if batch % world.size:
            raise ValueError(f"train.batch_size {batch} does not split evenly over {world.size} processes")
        self.ds, self.sampler, self.size, self.batch, self.rng = ds, sampler, size, batch, rng
        self.start, self.steps = start, steps
        self.share = slice(world.rank * batch // world.size, (world.rank + 1) * batch // world.size)
        self.pending = pending

    def __iter__(self) -> Iterator[np.ndarray]:
        for step in range(self.start, self.steps):
            if step not in self.pending:
                self.pending[step] = plan_crops(self.ds, self.sampler.draw(step, self.batch, self.rng), self.size,
                                                self.rng)
            yield self.pending[step][self.share]

    def __len__(self) -> int:
        return self.steps - self.start


@dataclass
class StepTimes:
    """Wall-clock seconds of each training step, and the part spent waiting for its batch."""
    data: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)


# A checkpoint left by other training code must not be resumed: its run would differ from a fresh one.
CODE_FILES = (Path(__file__), Path(models.__file__))


def run_fingerprint(mp: ModelParams, p: TrainParams, manifest: Path, attrs: dict) -> str:
    """What a checkpoint must match to be resumed: params, the distilled set and the training code."""
    parts = [mp.model_dump(), p.model_dump(), file_hash(manifest), attrs, [file_hash(f) for f in CODE_FILES]]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _save_atomic(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)  # a crash mid-write never leaves a checkpoint that reads as complete


def train(ds: DistilledSet, mp: ModelParams, p: TrainParams, checkpoint: Path, fingerprint: str,
          *, times: StepTimes | None = None, validate: Callable[[torch.nn.Module], float] | None = None
          ) -> tuple[torch.nn.Module, list[dict]]:
    """Train for p.steps, resuming from `checkpoint` when it was written for the same fingerprint.

    Under torchrun each process trains on its share of every batch with DistributedDataParallel;
    all draw the same batch plans and see all losses, so their curricula stay in step.
    `validate(model) -> PSNR` is recorded (by rank 0) as `psnr` in the curve every p.eval_every steps
    (at log steps)."""
    device, world = pick_device(p.device), distributed.current()
    torch.manual_seed(p.seed)
    rng = np.random.default_rng(p.seed)
    model = build_model(mp.arch, **mp.kwargs).to(device)
    if p.channels_last:
        model = model.to(memory_format=torch.channels_last)
    # The average of recent weights is the result: steadier than the last step on a tiny set.
    average = torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(p.ema)) if p.ema else None
    opt = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=p.steps, eta_min=p.lr * 0.01)
    m = ds.manifest
    # No curriculum (ablation): stage 2 from the first step, drawing from all samples by weight only.
    switch, mix = (int(round(p.stage1_fraction * p.steps)), p.stage2_mix) if p.curriculum else (0, 0.0)
    sampler = CurriculumSampler(m["stage"].to_numpy(), m["weight"].to_numpy(), switch, mix, p.loss_ema,
                                m["task"].to_numpy())
    size = min(p.crop, int(m["height"].min()), int(m["width"].min()))
    start, curve, window, pending = 0, [], [], {}

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
            pending = {int(k): v.numpy() for k, v in state["pending"].items()}
            if world.main:
                print(f"train: resumed from {checkpoint} at step {start}")

    if world.main:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)  # a DVC output even before the first save
    weights = balance_weights(ds) if p.balance == "task" else np.ones(len(ds), np.float32)
    task_weight = torch.from_numpy(weights).to(device)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None
                                  ) if world.size > 1 else model
    if p.compile:
        net = torch.compile(net)
    planner = BatchPlanner(ds, sampler, size, p.batch_size, rng, start, p.steps, world, pending)
    # batch_size=None: each plan is one batch; workers read crops while the device trains.
    loader = torch.utils.data.DataLoader(CropSet(ds, size), sampler=planner, batch_size=None,
                                         num_workers=p.workers, pin_memory=device.type == "cuda",
                                         prefetch_factor=p.prefetch if p.workers else None)
    model.train()
    batches = iter(loader)
    for step in tqdm(range(start, p.steps), desc="train", unit="step", initial=start, total=p.steps,
                     disable=not world.main):
        began = time.perf_counter()
        gt, lq = next(batches)
        waited = time.perf_counter() - began
        idx = planner.pending.pop(step)[:, 0]
        gt, lq = (t.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div(255.0) for t in (gt, lq))
        if p.channels_last:
            gt, lq = (t.contiguous(memory_format=torch.channels_last) for t in (gt, lq))
        with amp:
            out = net(lq)
        per_sample = (out.float() - gt).abs().mean((1, 2, 3)) * task_weight[idx[planner.share]]
        loss = per_sample.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if average is not None:
            average.update_parameters(model)
        every = distributed.gather(per_sample.detach())  # the whole batch, rank by rank
        sampler.update(idx, every.cpu().numpy())
        window.append(every.mean().item())
        if (step + 1) % p.log_every == 0 or step + 1 == p.steps:
            curve.append(dict(step=step + 1, loss=float(np.mean(window)), lr=sched.get_last_lr()[0],
                              stage=sampler.stage_at(step)))
            window = []
            if world.main and validate is not None and p.eval_every and (step + 1) % p.eval_every == 0:
                current = average.module if average is not None else model
                curve[-1]["psnr"] = float(validate(current.eval()))
                current.train()
        if world.main and (step + 1) % p.checkpoint_every == 0 and step + 1 < p.steps:
            _save_atomic(dict(fingerprint=fingerprint, step=step + 1, model=model.state_dict(),
                              average=average.state_dict() if average is not None else {},
                              opt=opt.state_dict(), sched=sched.state_dict(), rng=rng.bit_generator.state,
                              torch_rng=torch.get_rng_state(), running=torch.from_numpy(sampler.running),
                              pending={str(k): torch.from_numpy(v) for k, v in planner.pending.items()},
                              curve=curve, window=window), checkpoint)
        if times is not None:
            times.data.append(waited)
            times.total.append(time.perf_counter() - began)
    result = average.module if average is not None else model
    return result.eval().cpu(), curve
