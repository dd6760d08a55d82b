"""The select stage: TripleD's distribution-aware selection and the baselines it is compared with, in
one table of methods (METHODS) from which the params' list of methods is derived."""
from __future__ import annotations

from typing import Callable, Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from tripled.features.store import normalise
from tripled.params import Section

SUBSET_COLUMNS = ["id", "stage", "weight"]


def budget(n: int, ratio: float) -> int:
    """Samples to keep out of n: a fraction in (0, 1] or an absolute count."""
    k = max(int(round(ratio * n)) if ratio <= 1 else int(ratio), 1)
    if k > n:
        raise ValueError(f"select.ratio asks for {k} samples but only {n} training samples exist")
    return k


def apportion(sizes: np.ndarray, k: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Split k over groups in proportion to `weights` (default: their sizes; largest remainder), never
    above a size."""
    sizes = np.asarray(sizes, dtype=np.int64)
    w = sizes.astype(np.float64) if weights is None else np.asarray(weights, np.float64)
    quota = k * w / w.sum()
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


def content_keys(ids: pd.Series) -> np.ndarray:
    """What a sample shows, whatever its task: its id without the task ("rain/astronaut@0,64" ->
    "astronaut@0,64"). Synthesised tasks degrade the same clean tiles, so they share these keys."""
    return ids.astype(str).str.split("/", n=1).str[-1].to_numpy()


def _prefer(free: np.ndarray, ok: Callable[[int], bool]) -> np.ndarray:
    """The rows of `free` that pass `ok`, or all of them where none does."""
    kept = free[[ok(i) for i in free]]
    return kept if len(kept) else free


def _spread(order: np.ndarray, sources: np.ndarray, k: int, used: set,
            content: np.ndarray | None = None, seen: set | None = None) -> list[int]:
    """k rows evenly spaced along a difficulty ranking, preferring source images not in `used` and,
    given `content`, contents not in `seen` (picked by another task)."""
    picks = []
    targets = ((np.arange(k) + 0.5) * len(order) / k).astype(int)
    taken = np.zeros(len(order), bool)
    for t in targets:
        cand = np.flatnonzero(~taken)
        if content is not None:
            cand = _prefer(cand, lambda i: content[order[i]] not in seen)
        cand = _prefer(cand, lambda i: sources[order[i]] not in used)
        i = int(cand[np.argmin(np.abs(cand - t))])
        taken[i] = True
        used.add(sources[order[i]])
        if content is not None:
            seen.add(content[order[i]])
        picks.append(int(order[i]))
    return picks


def warmup_columns(scores: pd.DataFrame, columns: list[str], who: str) -> pd.DataFrame:
    """The warmup stage's `columns` of `scores`, refused where any is missing (warmup.steps 0)."""
    if not set(columns) <= set(scores) or scores[columns].isna().any().any():
        raise ValueError(f"{who} needs the warm-up loss: set warmup.steps > 0 (dvc repro reruns warmup)")
    return scores[columns]


def task_need(scores: pd.DataFrame, tasks: np.ndarray) -> np.ndarray:
    """Per task (in the order of `tasks`): the share of its input error (L1 of degraded to clean) that a
    short warm-up's proxy restorer leaves; near 1, the proxy learnt little of that task."""
    sums = warmup_columns(scores, ["loss", "input_loss"], "select.task_budget 'need'").groupby(
        scores["task"].to_numpy()).sum().loc[tasks]
    return (sums["loss"] / sums["input_loss"].clip(lower=1e-12)).to_numpy()


def task_budgets(scores: pd.DataFrame, k: int, p: SelectParams) -> tuple[np.ndarray, np.ndarray]:
    """The tasks and their shares of k: by size, or (select.task_budget need) by size times need, each
    task keeping at least one sample where the budget allows."""
    names, sizes = np.unique(scores["task"].to_numpy(), return_counts=True)
    if p.task_budget == "size":
        return names, apportion(sizes, k)
    floor = np.ones_like(sizes) if k >= len(sizes) else np.zeros_like(sizes)
    weights = sizes * task_need(scores, names)
    if weights.sum() <= 0:
        weights = sizes.astype(np.float64)
    return names, floor + apportion(sizes - floor, k - int(floor.sum()), weights)


def select_tripled(scores: pd.DataFrame, emb: np.ndarray | None, k: int, p: SelectParams,
                   rng: np.random.Generator) -> tuple[list[int], np.ndarray]:
    """Budget per task, then per feature cluster, in proportion to size; hardest outliers trimmed;
    inside each cluster picks spread over the difficulty ranking and over source images.
    `select.stratify: false` (ablation) treats each task as one cluster. `select.distinct_content`:
    each task prefers contents (clean tiles) no earlier task has picked. `select.task_budget: need`
    splits the budget over tasks by what a warm-up left of each (task_budgets)."""
    hard = difficulty(scores, p.uncertainty_weight)
    picks, weights = [], []
    tasks, sources = scores["task"].to_numpy(), scores["source"].to_numpy()
    all_clusters = scores["cluster"].to_numpy() if p.stratify else np.zeros(len(scores), np.int32)
    content = content_keys(scores["id"]) if p.distinct_content else None
    seen: set = set()  # contents picked so far, across tasks
    for task, kt in zip(*task_budgets(scores, k, p)):
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
            picked = _spread(members, sources, int(kc), used, content, seen)
            picks += picked
            weights += [len(members) / kc] * len(picked)
    return picks, np.asarray(weights)


def _random(scores, emb, k, p, rng):
    """Uniformly at random."""
    return list(rng.choice(len(scores), size=k, replace=False)), np.ones(k)


def _random_spread(scores, emb, k, p, rng):
    """At random, spread over source images: a tile of every source before a second of any."""
    order = rng.permutation(len(scores))
    sources = scores["source"].to_numpy()[order]
    turn = pd.Series(sources).groupby(sources).cumcount().to_numpy()  # 0: the source's first tile in `order`
    return list(order[np.argsort(turn, kind="stable")[:k]]), np.ones(k)


def _topk(values: np.ndarray, k: int) -> tuple[list[int], np.ndarray]:
    return list(np.argsort(-values, kind="stable")[:k]), np.ones(k)


def _entropy_topk(scores, emb, k, p, rng):
    """The highest predicted complexity."""
    return _topk(scores["complexity"].to_numpy(np.float64), k)


def _gradient_topk(scores, emb, k, p, rng):
    """The highest predicted gradient energy."""
    return _topk(scores["gradient"].to_numpy(np.float64), k)


def _loss(scores, emb, k, p, rng):
    """EL2N-style: the highest warm-up loss, relative to its task's mean loss (tasks differ tenfold)."""
    loss = warmup_columns(scores, ["loss"], "select.method 'loss'")["loss"].to_numpy(np.float64)
    task_mean = pd.Series(loss).groupby(scores["task"].to_numpy()).transform("mean").to_numpy()
    return _topk(loss / np.maximum(task_mean, 1e-12), k)


def _normalised_features(emb: np.ndarray | None, method: str) -> np.ndarray:
    if emb is None:
        raise ValueError(f"select.method '{method}' needs the feature store (--features)")
    return normalise(emb.astype(np.float64))


def _kcenter(scores, emb, k, p, rng):
    """Greedy k-center on the normalised features, from a random first centre."""
    x = _normalised_features(emb, p.method)
    picks = [int(rng.integers(len(x)))]
    dist = np.linalg.norm(x - x[picks[0]], axis=1)
    for _ in range(k - 1):
        i = int(np.argmax(dist))  # picked rows have distance 0, so they are never picked again
        picks.append(i)
        dist = np.minimum(dist, np.linalg.norm(x - x[i], axis=1))
    return picks, np.ones(k)


def _herding(scores, emb, k, p, rng):
    """Feature-mean matching (herding): each pick moves the subset's mean towards the full set's."""
    x = _normalised_features(emb, p.method)
    mu, w = x.mean(0), x.mean(0).copy()
    free = np.ones(len(x), bool)
    picks = []
    for _ in range(k):
        i = int(np.argmax(np.where(free, x @ w, -np.inf)))
        picks.append(i)
        free[i] = False
        w += mu - x[i]
    return picks, np.ones(k)


def _full(scores, emb, k, p, rng):
    return list(range(len(scores))), np.ones(len(scores))


def per_task(method: Callable) -> Callable:
    """`method` run inside each task on that task's share of the budget: TripleD's split by task size.
    On an all-in-one set this is the fair form of a baseline; blind to tasks, most take one task's samples."""
    def run(scores, emb, k, p, rng):
        tasks = scores["task"].to_numpy()
        names, sizes = np.unique(tasks, return_counts=True)
        picks, weights = [], []
        for task, kt in zip(names, apportion(sizes, k)):
            rows = np.flatnonzero(tasks == task)
            if kt:
                got, w = method(scores.iloc[rows].reset_index(drop=True), None if emb is None else emb[rows],
                                int(kt), p, rng)
                picks += rows[np.asarray(got, np.int64)].tolist()
                weights.append(w)
        return picks, np.concatenate(weights)

    run.__doc__ = f"Per task: {method.__doc__ or method.__name__}"
    return run


BASELINES = {"entropy_topk": _entropy_topk, "gradient_topk": _gradient_topk, "kcenter": _kcenter,
             "herding": _herding, "loss": _loss}
# Each method: (train rows of scores, their features or None, budget, params, rng) -> (row picks, weights).
# The baselines select inside each task, as TripleD does; `<name>_blind` ignore the split (and `random`
# beside `random_task`), to show how task-blind selection fails on an all-in-one set.
METHODS: dict[str, Callable] = {
    "tripled": select_tripled, "random_task": per_task(_random), "random_spread": per_task(_random_spread),
    "random": _random,
    **{name: per_task(fn) for name, fn in BASELINES.items()},
    **{f"{name}_blind": fn for name, fn in BASELINES.items()},
    "full": _full,
}
FEATURE_METHODS = ("kcenter", "herding", "kcenter_blind", "herding_blind")


class SelectParams(Section):
    method: Literal[tuple(METHODS)] = "tripled"
    ratio: float = Field(0.02, description="fraction in (0, 1], or an absolute count > 1")
    stage1_fraction: float = Field(0.5, ge=0.0, le=1.0)
    trim: float = Field(0.02, ge=0.0, lt=0.5, description="hardest fraction dropped as outliers")
    uncertainty_weight: float = Field(0.5, ge=0.0, description="0 = ablation without uncertainty")
    stratify: bool = Field(True, description="tripled: budget per feature cluster; false = ablation, per task only")
    distinct_content: bool = Field(False, description="tripled: each task prefers clean tiles no other task "
                                                      "has picked")
    task_budget: Literal["size", "need"] = Field("size", description="tripled: the budget over tasks in "
                                                 "proportion to their sizes, or to size times the share of "
                                                 "input error a warm-up left (needs warmup.steps > 0)")
    min_contrast: float = Field(0.0, ge=0.0, description="any method: training tiles whose clean side's luminance "
                                "std (0..255) is below this are left out of the pool; the total budget stays, its "
                                "split over tasks follows the tiles left; 0 = off")
    seed: int = 0

    @field_validator("ratio")
    @classmethod
    def _ratio(cls, v: float) -> float:
        if v <= 0 or (v > 1 and v != int(v)):
            raise ValueError(f"must be a fraction in (0, 1], or a whole count of samples above 1; got {v}")
        return v


def assign_stages(hard: np.ndarray, tasks: np.ndarray, stage1_fraction: float) -> np.ndarray:
    """Curriculum stage per picked sample: the easiest `stage1_fraction` of each task is stage 1."""
    stage = np.full(len(hard), 2, np.int8)
    for task in np.unique(tasks):
        rows = np.flatnonzero(tasks == task)
        n1 = int(round(stage1_fraction * len(rows)))
        stage[rows[np.argsort(hard[rows], kind="stable")[:n1]]] = 1
    return stage


def select(scores: pd.DataFrame, p: SelectParams, emb: np.ndarray | None = None) -> pd.DataFrame:
    """Subset of the training rows of `scores`: id, curriculum stage (1 easy, 2 hard) and weight.
    `emb`: feature rows aligned to `scores` (needed by kcenter and herding)."""
    is_train = (scores["split"] == "train").to_numpy()
    if emb is not None and len(emb) != len(scores):
        raise ValueError(f"features have {len(emb)} rows but scores {len(scores)}: rerun extract and score")
    n_train = int(is_train.sum())
    if p.min_contrast > 0:  # the pool shrinks, the budget does not
        if "contrast" not in scores:
            raise ValueError("select.min_contrast needs the tiles' contrast (column 'contrast'; the stage adds it)")
        textured = is_train & (scores["contrast"] >= p.min_contrast).to_numpy()
        if gone := sorted(set(scores["task"][is_train]) - set(scores["task"][textured])):
            raise ValueError(f"select.min_contrast {p.min_contrast} leaves no training tile of task(s) {gone}")
        is_train = textured  # the split over tasks then follows the tiles left
    k = int(is_train.sum()) if p.method == "full" else budget(n_train, p.ratio)
    if is_train.sum() < k:
        raise ValueError(f"select.min_contrast {p.min_contrast} leaves {int(is_train.sum())} training tiles, "
                         f"fewer than the budget of {k}")
    train = scores[is_train].reset_index(drop=True)
    picks, weights = METHODS[p.method](train, None if emb is None else emb[is_train], k, p,
                                       np.random.default_rng(p.seed))
    picks = np.asarray(picks, dtype=np.int64)
    hard = difficulty(train, p.uncertainty_weight)[picks]
    out = pd.DataFrame(dict(id=train["id"].to_numpy()[picks],
                            stage=assign_stages(hard, train["task"].to_numpy()[picks], p.stage1_fraction),
                            weight=(weights / weights.mean()).astype(np.float32)))
    return out.sort_values("id", kind="stable").reset_index(drop=True)
