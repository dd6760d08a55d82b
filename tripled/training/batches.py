"""Feeding the training loop: each step's batch plan (rows, crops, flips), drawn in the training process,
and the loader side that reads those crops from the distilled set."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from tripled.data.distilled import DistilledSet
from tripled.training.curriculum import CurriculumSampler
from tripled.training.distributed import World


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
