"""Statistics of a comparison over training seeds: paired differences (the same seed for both methods)."""
from __future__ import annotations

import math

import numpy as np

MARGIN_SE = 2.0  # "beats": the mean paired difference exceeds this many standard errors of it


def paired(a: dict[int, float], b: dict[int, float]) -> dict:
    """a − b over the seeds both have: n, mean, standard error of the mean, and whether a beats b."""
    seeds = sorted(set(a) & set(b))
    d = np.array([a[s] - b[s] for s in seeds], np.float64)
    mean = float(d.mean()) if len(d) else math.nan
    se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else math.nan
    return dict(n=len(d), diff_db=round(mean, 4), se_db=round(se, 4), beats=bool(len(d) > 1 and mean > MARGIN_SE * se),
                seeds=seeds, diffs=[round(float(x), 4) for x in d])


def seeds_needed(a: dict[int, float], b: dict[int, float]) -> int | None:
    """The fewest seeds (taken in order) from which on a beats b at every larger count; None if it never does."""
    seeds = sorted(set(a) & set(b))
    needed = None
    for n in range(2, len(seeds) + 1):
        beats = paired({s: a[s] for s in seeds[:n]}, {s: b[s] for s in seeds[:n]})["beats"]
        needed = (needed or n) if beats else None
    return needed
