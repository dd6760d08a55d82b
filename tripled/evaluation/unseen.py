"""Degradations never trained on: applied to the clean test images, so a restorer (and the distilled set
it was trained on) is scored on what it has not seen, apart from the trained tasks."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import torch

from tripled.data.degradations import DegradationSpec, degrade
from tripled.data.images import crop, read_image_cached
from tripled.data.index import row_box
from tripled.evaluation.evaluate import evaluate
from tripled.hashing import stable_int

Chain = tuple[DegradationSpec, ...]


def parse_chain(entry: dict[str, Any] | list[dict[str, Any]]) -> Chain:
    """One unseen degradation: a spec, or a list of specs applied in turn (a mix)."""
    specs = entry if isinstance(entry, list) else [entry]
    if not specs:
        raise ValueError("an unseen degradation needs at least one spec")
    return tuple(DegradationSpec.from_dict(d) for d in specs)


def chain_name(chain: Chain) -> str:
    return "+".join(spec.task for spec in chain)


def clean_test_rows(index: pd.DataFrame, chain: Chain) -> pd.DataFrame:
    """The test split's clean samples, each once (tasks of a synthetic set share them), as rows of the
    unseen task `chain_name(chain)`."""
    test = index[index["split"] == "test"].drop_duplicates(["gt_path", "x", "y", "w", "h"])
    name = chain_name(chain)
    ids = name + "/" + test["source"] + "@" + test["x"].astype(str) + "," + test["y"].astype(str)
    return test.assign(task=name, id=ids, lq_path="").reset_index(drop=True)


@lru_cache(maxsize=4)
def _degraded(path: str, chain: Chain, seed: int) -> np.ndarray:
    """The whole clean image degraded by `chain` (haze and rain depend on the whole image, not a tile)."""
    img = read_image_cached(path)
    for spec in chain:
        img = degrade(img, spec, stable_int(seed, path, spec.task))
    img.flags.writeable = False
    return img


def unseen_pair(chain: Chain, seed: int):
    """pair(row) -> (clean, degraded) tile of a clean test row, for evaluate()."""
    def pair(row) -> tuple[np.ndarray, np.ndarray]:
        box = row_box(row)
        return crop(read_image_cached(row.gt_path), box), crop(_degraded(row.gt_path, chain, seed), box)

    return pair


def evaluate_unseen(model: torch.nn.Module, index: pd.DataFrame, unseen: list, seed: int, tile: int = 0,
                    overlap: int = 0, device: torch.device = torch.device("cpu"),
                    progress: bool = True) -> pd.DataFrame:
    """evaluate() on the clean test images degraded by each entry of `unseen` (evaluate.unseen), one task each."""
    frames = [evaluate(model, clean_test_rows(index, chain), tile, overlap, device, progress,
                       pair=unseen_pair(chain, seed)) for chain in map(parse_chain, unseen)]
    return pd.concat(frames, ignore_index=True)
