"""The warmup stage, for the `loss` baseline and `select.task_budget: need`: the per-sample loss of a small
proxy restorer trained briefly on a random share of the training samples (EL2N-style: early error marks
the hard samples), beside the sample's input error (its degraded side's L1 to the clean side).

It trains its own proxy (section `warmup`), never the restorer of `model`/`train`, so that editing the
training loop or the restorer's params does not rerun selection. With `warmup.steps: 0` (the default)
it trains nothing and every loss is NaN.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from pydantic import Field
from tqdm import tqdm

from tripled.data.index import read_sample, train_mask
from tripled.evaluation.metrics import to_tensor
from tripled.params import Section
from tripled.training.archs import ArchName, build_model

PROXY = dict(width=8, enc_blk_nums=[1, 1], dec_blk_nums=[1, 1], middle_blk_num=1)


class WarmupParams(Section):
    steps: int = Field(0, ge=0, description="proxy training steps; 0 = off (select.method loss needs > 0)")
    share: float = Field(0.1, gt=0, le=1, description="share of the training samples the proxy trains on")
    arch: ArchName = "nafnet"
    kwargs: dict[str, Any] = Field(default_factory=lambda: dict(PROXY))
    batch_size: int = Field(32, ge=1)
    crop: int = Field(32, ge=8)
    lr: float = Field(2e-3, gt=0)
    seed: int = 0


def fit_proxy(pairs: list[tuple[np.ndarray, np.ndarray]], p: WarmupParams) -> torch.nn.Module:
    """The proxy after p.steps of L1 on random crops of the (gt, lq) pairs."""
    torch.manual_seed(p.seed)
    rng = np.random.default_rng(p.seed)
    model = build_model(p.arch, **p.kwargs)
    opt = torch.optim.AdamW(model.parameters(), lr=p.lr)
    size = min(p.crop, *(min(gt.shape[:2]) for gt, _ in pairs))
    for _ in tqdm(range(p.steps), desc="warmup", unit="step"):
        crops = []
        for i in rng.integers(len(pairs), size=p.batch_size):
            gt, lq = pairs[i]
            y, x = (int(rng.integers(0, n - size + 1)) for n in gt.shape[:2])
            crops.append((gt[y:y + size, x:x + size], lq[y:y + size, x:x + size]))
        gt, lq = (torch.from_numpy(np.stack(side)).permute(0, 3, 1, 2).float().div(255.0) for side in zip(*crops))
        loss = (model(lq) - gt).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@torch.no_grad()
def _l1(model: torch.nn.Module, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The proxy's L1 to the clean side, and the degraded side's, per row."""
    out, given = np.empty(len(rows), np.float32), np.empty(len(rows), np.float32)
    for k, r in enumerate(tqdm(rows.itertuples(), total=len(rows), desc="warmup: loss", unit="img")):
        gt, lq = to_tensor(read_sample(r, "gt")), to_tensor(read_sample(r, "lq"))
        out[k] = (model(lq).clamp(0, 1) - gt).abs().mean().item()
        given[k] = (lq - gt).abs().mean().item()
    return out, given


def warmup_loss(index: pd.DataFrame, p: WarmupParams) -> pd.DataFrame:
    """id, loss and input_loss of every index row: the proxy's L1 and the degraded side's on training
    rows, NaN on test rows (all NaN when off)."""
    loss, input_loss = np.full(len(index), np.nan, np.float32), np.full(len(index), np.nan, np.float32)
    train_rows = np.flatnonzero(train_mask(index))
    if p.steps and len(train_rows):
        rng = np.random.default_rng(p.seed)
        warm = np.sort(rng.choice(train_rows, size=max(1, int(round(p.share * len(train_rows)))), replace=False))
        pairs = [(read_sample(r, "gt"), read_sample(r, "lq")) for r in index.iloc[warm].itertuples()]
        loss[train_rows], input_loss[train_rows] = _l1(fit_proxy(pairs, p), index.iloc[train_rows])
    return pd.DataFrame(dict(id=index["id"], loss=loss, input_loss=input_loss))
