"""The score stage: complexity (an ensemble of regression heads on the ViT features), uncertainty (their
disagreement) and feature clusters for every sample."""
from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field
from sklearn.cluster import KMeans
from sklearn.linear_model import Ridge

from tripled.features.complexity import combine
from tripled.features.store import normalise
from tripled.params import Section


class ScoreParams(Section):
    label: Literal["global_entropy", "local_entropy", "gradient", "combined"] = "combined"
    heads: int = Field(8, ge=2)
    alpha: float = Field(1.0, gt=0, description="ridge regularisation of each head")
    clusters: int = Field(8, ge=1)
    seed: int = 0


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
