"""Subset selection: TripleD's distribution-aware selection and the baselines it is compared with."""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from tripled.params import SelectParams

SUBSET_COLUMNS = ["id", "stage", "weight"]


def budget(n: int, ratio: float) -> int:
    """Samples to keep out of n: a fraction in (0, 1] or an absolute count."""
    k = max(int(round(ratio * n)) if ratio <= 1 else int(ratio), 1)
    if k > n:
        raise ValueError(f"select.ratio asks for {k} samples but only {n} training samples exist")
    return k


def apportion(sizes: np.ndarray, k: int) -> np.ndarray:
    """Split k over groups in proportion to their sizes (largest remainder), never above a size."""
    sizes = np.asarray(sizes, dtype=np.int64)
    quota = k * sizes / sizes.sum()
    out = np.minimum(np.floor(quota).astype(np.int64), sizes)
    while out.sum() < k:
        room = out < sizes
        gap = np.where(room, quota - out, -np.inf)
        out[int(np.argmax(gap))] += 1
    return out


def difficulty(scores: pd.DataFrame, uncertainty_weight: float) -> np.ndarray:
    """z(complexity) + w * z(uncertainty): what 'hard' means for ranking and for the curriculum."""
    def z(v: pd.Series) -> np.ndarray:
        v = v.to_numpy(np.float64)
        return (v - v.mean()) / (v.std() + 1e-12)

    return z(scores["complexity"]) + uncertainty_weight * z(scores["uncertainty"])


def _spread(order: np.ndarray, sources: np.ndarray, k: int, used: set) -> list[int]:
    """k rows evenly spaced along a difficulty ranking, preferring source images not in `used`."""
    picks = []
    targets = ((np.arange(k) + 0.5) * len(order) / k).astype(int)
    taken = np.zeros(len(order), bool)
    for t in targets:
        free = np.flatnonzero(~taken)
        fresh = free[[sources[order[i]] not in used for i in free]]
        cand = fresh if len(fresh) else free
        i = int(cand[np.argmin(np.abs(cand - t))])
        taken[i] = True
        used.add(sources[order[i]])
        picks.append(int(order[i]))
    return picks


def select_tripled(scores: pd.DataFrame, k: int, p: SelectParams, rng: np.random.Generator) -> tuple[list[int], np.ndarray]:
    """Budget per task, then per feature cluster, in proportion to size; hardest outliers trimmed;
    inside each cluster picks spread over the difficulty ranking and over source images."""
    hard = difficulty(scores, p.uncertainty_weight)
    picks, weights = [], []
    tasks, sources = scores["task"].to_numpy(), scores["source"].to_numpy()
    all_clusters = scores["cluster"].to_numpy()
    task_names, task_sizes = np.unique(tasks, return_counts=True)
    for task, kt in zip(task_names, apportion(task_sizes, k)):
        rows = np.flatnonzero(tasks == task)
        keep = rows[np.argsort(hard[rows], kind="stable")]
        keep = keep[:max(int(np.ceil(len(keep) * (1 - p.trim))), kt)]  # drop the hardest few per cent
        clusters = all_clusters[keep]
        names, sizes = np.unique(clusters, return_counts=True)
        used: set = set()  # sources already drawn for this task, across its clusters
        for c, kc in zip(names, apportion(sizes, kt)):
            if kc == 0:
                continue
            members = keep[clusters == c]  # already sorted by difficulty
            picked = _spread(members, sources, int(kc), used)
            picks += picked
            weights += [len(members) / kc] * len(picked)
    return picks, np.asarray(weights)


def _random(scores: pd.DataFrame, k: int, p: SelectParams, rng: np.random.Generator):
    return list(rng.choice(len(scores), size=k, replace=False)), np.ones(k)


def _entropy_topk(scores: pd.DataFrame, k: int, p: SelectParams, rng: np.random.Generator):
    return list(np.argsort(-scores["complexity"].to_numpy(), kind="stable")[:k]), np.ones(k)


def _full(scores: pd.DataFrame, k: int, p: SelectParams, rng: np.random.Generator):
    return list(range(len(scores))), np.ones(len(scores))


METHODS: dict[str, Callable] = {"tripled": select_tripled, "random": _random,
                                "entropy_topk": _entropy_topk, "full": _full}


def assign_stages(hard: np.ndarray, tasks: np.ndarray, stage1_fraction: float) -> np.ndarray:
    """Curriculum stage per picked sample: the easiest `stage1_fraction` of each task is stage 1."""
    stage = np.full(len(hard), 2, np.int8)
    for task in np.unique(tasks):
        rows = np.flatnonzero(tasks == task)
        n1 = int(round(stage1_fraction * len(rows)))
        stage[rows[np.argsort(hard[rows], kind="stable")[:n1]]] = 1
    return stage


def select(scores: pd.DataFrame, p: SelectParams) -> pd.DataFrame:
    """Subset of the training rows of `scores`: id, curriculum stage (1 easy, 2 hard) and weight."""
    train = scores[scores["split"] == "train"].reset_index(drop=True)
    k = len(train) if p.method == "full" else budget(len(train), p.ratio)
    picks, weights = METHODS[p.method](train, k, p, np.random.default_rng(p.seed))
    picks = np.asarray(picks, dtype=np.int64)
    hard = difficulty(train, p.uncertainty_weight)[picks]
    out = pd.DataFrame(dict(id=train["id"].to_numpy()[picks],
                            stage=assign_stages(hard, train["task"].to_numpy()[picks], p.stage1_fraction),
                            weight=(weights / weights.mean()).astype(np.float32)))
    return out.sort_values("id", kind="stable").reset_index(drop=True)
