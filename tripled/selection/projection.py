"""A 2-D view of the feature space: the full training set, the selected subset, and the subset after
refine, projected on the full set's first two principal components (for `dvc plots`)."""
from __future__ import annotations

import numpy as np
import pandas as pd

GROUPS = ("all", "selected", "refined")


def principal_axes(reference: np.ndarray, k: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Mean and the first `k` principal directions (k x dim) of `reference`, signs fixed so that
    each direction's largest loading is positive (the same features always give the same picture)."""
    reference = np.asarray(reference, np.float64)
    if reference.ndim != 2 or len(reference) < 2:
        raise ValueError(f"need at least two feature rows to project, got shape {reference.shape}")
    mean = reference.mean(0)
    _, _, vt = np.linalg.svd(reference - mean, full_matrices=False)
    axes = vt[:k]
    flip = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(1)])
    return mean, axes * flip[:, None]


def projection_table(full: np.ndarray, selected: np.ndarray, refined: np.ndarray, max_points: int = 4000,
                     seed: int = 0) -> pd.DataFrame:
    """Columns pc1, pc2 and set (all / selected / refined), one row per point. The full set is thinned
    to `max_points` rows for the plot; the principal axes come from all of it."""
    mean, axes = principal_axes(full)
    if len(full) > max_points:
        full = full[np.sort(np.random.default_rng(seed).choice(len(full), max_points, replace=False))]
    frames = []
    for name, feats in zip(GROUPS, (full, selected, refined)):
        xy = ((np.asarray(feats, np.float64) - mean) @ axes.T).round(4)
        frames.append(pd.DataFrame({"pc1": xy[:, 0], "pc2": xy[:, 1], "set": name}))
    return pd.concat(frames, ignore_index=True)
