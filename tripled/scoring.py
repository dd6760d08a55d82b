"""Complexity (ensemble of regression heads on ViT features), uncertainty (their disagreement), clusters."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.linear_model import Ridge

from tripled.complexity import combine
from tripled.params import ScoreParams


def _normalise(emb: np.ndarray) -> np.ndarray:
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
    return KMeans(n_clusters=k, n_init=4, random_state=p.seed).fit_predict(_normalise(emb)).astype(np.int32)


def score(index: pd.DataFrame, emb: np.ndarray, labels: np.ndarray, p: ScoreParams) -> pd.DataFrame:
    """One row per sample: id, task, split, label (NaN if not labelled), complexity, uncertainty, cluster."""
    target = combine(labels, p.label)
    preds = fit_heads(emb, target, p)
    return pd.DataFrame(dict(id=index["id"], task=index["task"], source=index["source"], split=index["split"],
                             label=target.astype(np.float32), complexity=preds.mean(0),
                             uncertainty=preds.std(0), cluster=cluster(emb, p)))
