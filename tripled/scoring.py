"""Complexity (ensemble of regression heads on ViT features), uncertainty (their disagreement), clusters,
and the per-sample loss of a briefly trained restorer (EL2N-style, for the `loss` baseline)."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.cluster import KMeans
from sklearn.linear_model import Ridge
from tqdm import tqdm

from tripled.complexity import combine
from tripled.distilled import DistilledSet, DistilledWriter
from tripled.io import read_sample
from tripled.metrics import to_tensor
from tripled.params import ModelParams, ScoreParams, TrainParams
from tripled.train import train


def normalise(emb: np.ndarray) -> np.ndarray:
    return emb / (np.linalg.norm(emb, axis=1, keepdims=True) + 1e-8)


def fit_heads(emb: np.ndarray, target: np.ndarray, p: ScoreParams) -> np.ndarray:
    """Predictions (heads x rows) of ridge heads, each fitted on a bootstrap of the labelled rows."""
    labelled = np.flatnonzero(~np.isnan(target))
    if len(labelled) < 2:
        raise ValueError("score: fewer than 2 labelled samples; raise features.label_samples")
    rng = np.random.default_rng(p.seed)
    mu, sd = emb[labelled].mean(0), emb[labelled].std(0) + 1e-6
    x = (emb - mu) / sd
    preds = np.empty((p.heads, len(emb)), np.float32)
    for k in range(p.heads):
        boot = rng.choice(labelled, size=len(labelled), replace=True)
        preds[k] = Ridge(alpha=p.alpha * x.shape[1]).fit(x[boot], target[boot]).predict(x)
    return preds


def cluster(emb: np.ndarray, p: ScoreParams) -> np.ndarray:
    k = min(p.clusters, len(emb))
    return KMeans(n_clusters=k, n_init=4, random_state=p.seed).fit_predict(normalise(emb)).astype(np.int32)


def score(index: pd.DataFrame, emb: np.ndarray, labels: np.ndarray, p: ScoreParams) -> pd.DataFrame:
    """One row per sample: id, task, split, label (NaN if not labelled), complexity, uncertainty,
    gradient (predicted gradient energy, for the gradient_topk baseline), cluster."""
    target = combine(labels, p.label)
    preds = fit_heads(emb, target, p)
    gradient = fit_heads(emb, combine(labels, "gradient"), p).mean(0)
    return pd.DataFrame(dict(id=index["id"], task=index["task"], source=index["source"], split=index["split"],
                             label=target.astype(np.float32), complexity=preds.mean(0),
                             uncertainty=preds.std(0), gradient=gradient, cluster=cluster(emb, p)))


@torch.no_grad()
def _l1(model: torch.nn.Module, rows: pd.DataFrame) -> np.ndarray:
    out = np.empty(len(rows), np.float32)
    for k, r in enumerate(tqdm(rows.itertuples(), total=len(rows), desc="score: warm-up loss", unit="img")):
        gt, lq = to_tensor(read_sample(r, "gt")), to_tensor(read_sample(r, "lq"))
        out[k] = (model(lq).clamp(0, 1) - gt).abs().mean().item()
    return out


def warmup_loss(index: pd.DataFrame, mp: ModelParams, p: ScoreParams) -> np.ndarray:
    """Per-sample L1 of a restorer trained for score.loss_steps on a random score.loss_warmup share of
    the training samples (EL2N-style: early error marks the hard samples); NaN for test rows."""
    loss = np.full(len(index), np.nan, np.float32)
    train_rows = np.flatnonzero((index["split"] == "train").to_numpy())
    if p.loss_steps == 0 or len(train_rows) == 0:
        return loss
    rng = np.random.default_rng(p.seed)
    warm = np.sort(rng.choice(train_rows, size=max(1, int(round(p.loss_warmup * len(train_rows)))), replace=False))
    tp = TrainParams(steps=p.loss_steps, ema=0.0, curriculum=False, checkpoint_every=p.loss_steps, seed=p.seed)
    with tempfile.TemporaryDirectory() as tmp:
        writer = DistilledWriter(Path(tmp) / "warmup", dict(purpose="score warm-up"))
        for r in index.iloc[warm].itertuples():
            writer.add(dict(id=r.id, task=r.task, stage=1, weight=1.0), read_sample(r, "gt"), read_sample(r, "lq"))
        writer.close()
        model, _ = train(DistilledSet(Path(tmp) / "warmup", memory_limit=1 << 30), mp, tp,
                         Path(tmp) / "checkpoint.pt", "warmup")
    loss[train_rows] = _l1(model, index.iloc[train_rows])
    return loss
