"""The sample index (data/index.parquet, written by prepare): one row per sample, a pair or a tile of
one. Every later stage reads it here, refusing paths that lead outside the data folders."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from tripled.data.images import crop, read_image_cached
from tripled.data.layouts import inside
from tripled.errors import LayoutError
from tripled.params import load_section

INDEX_COLUMNS = ["id", "task", "source", "split", "lq_path", "gt_path", "x", "y", "w", "h",
                 "height", "width", "hash"]
PREPARED = Path("data/prepared")


class DataRoot(BaseModel):
    """The one key of the `data` section that stages after prepare need (prepare checks the rest)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    root: str = Field(description="'demo' (offline demo set) or a dataset folder")


def data_roots(root: str, prepared: Path = PREPARED) -> list[Path]:
    """The folders index paths may lead into: what prepare wrote, and the dataset itself."""
    return [prepared] if root == "demo" else [prepared, Path(root)]


def read_index(path: Path | str, roots: list[Path]) -> pd.DataFrame:
    """The sample index, refused if (perhaps pulled from a remote) any image path leads outside
    `roots`: the dataset and the prepared folder are all a stage may read."""
    index = pd.read_parquet(path)
    for col in ("gt_path", "lq_path"):
        for p in index[col].unique():
            if not any(inside(Path(p), root) for root in roots):
                raise LayoutError(f"{path}: image path {p!r} ({col}) is outside the data folders "
                                  f"{[str(r) for r in roots]}; rerun prepare instead of using this index")
    return index


def load_index(path: Path | str, params_path: Path | str = "params.yaml") -> pd.DataFrame:
    """read_index with the roots of `data.root` in the params file: how a stage opens the index."""
    return read_index(path, data_roots(load_section(DataRoot, "data", params_path).root))


def row_box(row) -> tuple[int, int, int, int]:
    """(x, y, w, h) of an index row: the tile, or the whole image."""
    return int(row.x), int(row.y), int(row.w), int(row.h)


def sample_path(row, side: str) -> str:
    """The 'gt' or 'lq' file of an index row."""
    return row.gt_path if side == "gt" else row.lq_path


def read_sample(row, side: str) -> np.ndarray:
    """The 'gt' or 'lq' image of an index row, cropped to its box."""
    return crop(read_image_cached(sample_path(row, side)), row_box(row))


def train_mask(index: pd.DataFrame) -> np.ndarray:
    return (index["split"] == "train").to_numpy()
