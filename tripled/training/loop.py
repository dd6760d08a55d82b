"""The train stage's loop: a restorer trained on the distilled set with the two-stage curriculum;
checkpoints and exact resume; one process, or several under torchrun (DDP)."""
from __future__ import annotations

import copy
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from tripled.data.distilled import DistilledSet
from tripled.device import autocast, pick_device
from tripled.hashing import code_hash, file_hash, value_hash
from tripled.training import archs, batches, checkpoint, curriculum, distributed
from tripled.training.archs import build_model, common, nafnet, promptir
from tripled.training.batches import BatchPlanner, CropSet
from tripled.training.checkpoint import TrainState
from tripled.training.curriculum import CurriculumSampler
from tripled.training.params import ModelParams, TrainParams

# The code that decides what a run computes: a checkpoint of other code must not be resumed.
CODE_MODULES = (sys.modules[__name__], batches, checkpoint, curriculum, archs, common, nafnet, promptir)


def run_fingerprint(mp: ModelParams, p: TrainParams, manifest: Path, attrs: dict) -> str:
    """What a checkpoint must match to be resumed: params, the distilled set and the training code."""
    return value_hash(mp.model_dump(), p.model_dump(), file_hash(manifest), attrs, code_hash(*CODE_MODULES))


def balance_weights(ds: DistilledSet, power: float = 1.0) -> np.ndarray:
    """Per-sample loss weight 1 / (mean input L1 of its task) ** power: haze or low-light errors are ten
    times blur or JPEG ones, and unbalanced they decide the whole model; power < 1 balances part-way."""
    err = np.array([np.abs(gt.astype(np.float32) - lq).mean() / 255.0 for gt, lq in map(ds.pair, range(len(ds)))])
    task_err = ds.manifest.assign(err=err).groupby("task")["err"].transform("mean").to_numpy()
    w = 1.0 / np.maximum(task_err, 1e-3) ** power
    return (w / w.mean()).astype(np.float32)


@dataclass
class StepTimes:
    """Wall-clock seconds of each training step, and the part spent waiting for its batch."""
    data: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)


def schedule(opt: torch.optim.Optimizer, p: TrainParams) -> torch.optim.lr_scheduler.LRScheduler:
    """Cosine decay to 1 % of p.lr by the last step, after p.warmup_steps of linear rise from 1 %."""
    warm = min(p.warmup_steps, p.steps - 1)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=p.steps - warm, eta_min=p.lr * 0.01)
    if not warm:
        return cosine
    rise = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.01, total_iters=warm)
    return torch.optim.lr_scheduler.SequentialLR(opt, [rise, cosine], milestones=[warm])


def to_channels_last(model: torch.nn.Module) -> torch.nn.Module:
    """NHWC layout for the model's 4-D tensors, in place. Not Module.to(memory_format=...): torch 2.11's
    raises on any other rank (PromptIR's 5-D prompts)."""
    for t in (*model.parameters(), *model.buffers()):
        if t.dim() == 4:
            t.data = t.data.contiguous(memory_format=torch.channels_last)
    return model


def initial_state(ds: DistilledSet, mp: ModelParams, p: TrainParams, device: torch.device) -> TrainState:
    """A fresh run: seeded model (identity at start), weight average, AdamW with its schedule, curriculum."""
    torch.manual_seed(p.seed)
    rng = np.random.default_rng(p.seed)
    model = build_model(mp.arch, **mp.kwargs).to(device)
    if p.channels_last:
        to_channels_last(model)
    average = torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(p.ema)) if p.ema else None
    opt = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    sched = schedule(opt, p)
    m = ds.manifest
    # No curriculum (ablation): stage 2 from the first step, drawing from all samples by weight only.
    switch, mix = (int(round(p.stage1_fraction * p.steps)), p.stage2_mix) if p.curriculum else (0, 0.0)
    sampler = CurriculumSampler(m["stage"].to_numpy(), m["weight"].to_numpy(), switch, mix, p.loss_ema,
                                m["task"].to_numpy())
    return TrainState(model, average, opt, sched, rng, sampler)


def train(ds: DistilledSet, mp: ModelParams, p: TrainParams, checkpoint_path: Path, fingerprint: str,
          *, times: StepTimes | None = None, validate: Callable[[torch.nn.Module], float] | None = None,
          judge: Callable[[torch.nn.Module], float] | None = None,
          on_log: Callable[[dict], None] | None = None) -> tuple[torch.nn.Module, list[dict]]:
    """Train for p.steps, resuming from `checkpoint_path` when it was written for the same fingerprint.

    Under torchrun each process trains on its share of every batch with DistributedDataParallel;
    all draw the same batch plans and see all losses, so their curricula stay in step.
    `validate(model) -> PSNR` is recorded (by rank 0) as `psnr` in the curve every p.eval_every steps
    (at log steps). `judge(model) -> PSNR` on tiles outside the test split, at the same steps and the
    last, is recorded as `val_psnr`; with p.keep_best the result is the weights it judged best.
    `on_log(row)` sees every row of the curve once, in order, as it is made (rank 0): a
    resumed run first replays the rows its checkpoint holds, so a live log ends up with each step once."""
    device, world = pick_device(p.device), distributed.current()
    state = initial_state(ds, mp, p, device)
    size = min(p.crop, int(ds.manifest["height"].min()), int(ds.manifest["width"].min()))
    if state.resume(checkpoint_path, fingerprint) and world.main:
        print(f"train: resumed from {checkpoint_path} at step {state.step}")
    on_log = on_log if world.main and on_log is not None else (lambda row: None)
    for row in state.curve:
        on_log(row)
    if world.main:
        checkpoint_path.parent.mkdir(parents=True, exist_ok=True)  # a DVC output even before the first save
    weights = balance_weights(ds, p.balance_power) if p.balance == "task" else np.ones(len(ds), np.float32)
    task_weight = torch.from_numpy(weights).to(device)
    amp = autocast(p.precision, device)
    net = DistributedDataParallel(state.model, device_ids=[device.index] if device.type == "cuda" else None
                                  ) if world.size > 1 else state.model
    if p.compile:
        net = torch.compile(net)
    planner = BatchPlanner(ds, state.sampler, size, p.batch_size, state.rng, state.step, p.steps, world,
                           state.pending)
    # batch_size=None: each plan is one batch; workers read crops while the device trains.
    loader = torch.utils.data.DataLoader(CropSet(ds, size), sampler=planner, batch_size=None,
                                         num_workers=p.workers, pin_memory=device.type == "cuda",
                                         prefetch_factor=p.prefetch if p.workers else None)
    state.model.train()
    loaded = iter(loader)
    for step in tqdm(range(state.step, p.steps), desc="train", unit="step", initial=state.step, total=p.steps,
                     disable=not world.main):
        began = time.perf_counter()
        gt, lq = next(loaded)
        waited = time.perf_counter() - began
        idx = planner.pending.pop(step)[:, 0]
        gt, lq = (t.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div(255.0) for t in (gt, lq))
        if p.channels_last:
            gt, lq = (t.contiguous(memory_format=torch.channels_last) for t in (gt, lq))
        with amp:
            out = net(lq)
        per_sample = (out.float() - gt).abs().mean((1, 2, 3)) * task_weight[idx[planner.share]]
        _update(state, per_sample.mean(), p.grad_clip)
        every = distributed.gather(per_sample.detach())  # the whole batch, rank by rank
        state.sampler.update(idx, every.cpu().numpy())
        state.window.append(every.mean().item())
        state.step = step + 1
        if state.step % p.log_every == 0 or state.step == p.steps:
            on_log(_log(state, p, *((validate, judge) if world.main else (None, None))))
        if world.main and state.step % p.checkpoint_every == 0 and state.step < p.steps:
            state.save(checkpoint_path, fingerprint)
        if times is not None:
            times.data.append(waited)
            times.total.append(time.perf_counter() - began)
    result = state.result
    if p.keep_best and state.best is not None:
        result = copy.deepcopy(result)
        result.load_state_dict(state.best)
    return result.eval().cpu(), state.curve


def _update(state: TrainState, loss: torch.Tensor, clip: float = 0.0) -> None:
    state.opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip:  # one outlier batch of a tiny set must not throw the weights far
        torch.nn.utils.clip_grad_norm_(state.model.parameters(), clip)
    state.opt.step()
    state.sched.step()
    if state.average is not None:
        state.average.update_parameters(state.model)


def _log(state: TrainState, p: TrainParams, validate: Callable[[torch.nn.Module], float] | None,
         judge: Callable[[torch.nn.Module], float] | None = None) -> dict:
    """One row of the curve: mean loss since the last row, learning rate, stage; held-out PSNR when due,
    and the judged PSNR, keeping the best-judged weights."""
    row = dict(step=state.step, loss=float(np.mean(state.window)), lr=state.sched.get_last_lr()[0],
               stage=state.sampler.stage_at(state.step - 1))
    state.curve.append(row)
    state.window = []
    if validate is not None and p.eval_every and state.step % p.eval_every == 0:
        row["psnr"] = float(validate(state.result.eval()))
        state.result.train()
    if judge is not None and p.eval_every and (state.step % p.eval_every == 0 or state.step == p.steps):
        row["val_psnr"] = score = float(judge(state.result.eval()))
        state.result.train()
        if score > state.best_score:
            state.best_score = score
            state.best = {k: v.detach().cpu().clone() for k, v in state.result.state_dict().items()}
    return row
