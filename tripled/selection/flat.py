"""Near-flat tiles: a clean side with almost no contrast (sky, walls, flat art) carries little restoration
signal, and real photograph sets are full of them. `select.min_contrast` leaves them out of the pool
before any method selects."""
from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm import tqdm

from tripled.data.index import read_sample

LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def contrast(img: np.ndarray) -> float:
    """Standard deviation of the luminance, on the 0..255 scale (grey images: of their values)."""
    x = img.astype(np.float32)
    grey = x[..., :3] @ LUMA if x.ndim == 3 and x.shape[-1] >= 3 else x.reshape(x.shape[0], -1)
    return float(grey.std())


def tile_contrast(rows: pd.DataFrame) -> np.ndarray:
    """contrast() of the clean side of each index row."""
    return np.array([contrast(read_sample(r, "gt"))
                     for r in tqdm(rows.itertuples(), total=len(rows), desc="contrast", unit="tile")])
