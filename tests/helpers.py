"""Small builders shared by the tests."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from tripled.distilled import DistilledWriter
from tripled.io import file_hash
from tripled.params import FeatureParams

TINY_VIT = FeatureParams(backbone="vit_tiny_patch16_224", thumb_size=32, batch_size=8, label_samples=8,
                         scratch_steps=0, model_kwargs=dict(depth=1, embed_dim=48, num_heads=2))


def smooth_images(n: int, size: int, seed: int = 0) -> np.ndarray:
    """n smooth colour images (n x size x size x 3 uint8)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for _ in range(n):
        a, b, c = rng.uniform(0.2, 0.8, 3)
        img = np.stack([a + 0.2 * np.sin(6 * xx * b), b + 0.2 * np.cos(5 * yy * c), c + 0.1 * xx], -1)
        out.append(np.clip(img * 255, 0, 255).astype(np.uint8))
    return np.stack(out)


def write_distilled(folder: Path, n: int = 8, size: int = 32, sigma: float = 25.0) -> Path:
    """A toy distilled set: smooth clean images and noisy inputs, two tasks, two stages."""
    rng = np.random.default_rng(1)
    writer = DistilledWriter(folder, dict(toy=True))
    for i, gt in enumerate(smooth_images(n, size)):
        lq = np.clip(gt + rng.normal(0, sigma if i % 2 else sigma / 2, gt.shape), 0, 255).astype(np.uint8)
        writer.add(dict(id=f"t{i % 2}/{i}", task=f"t{i % 2}", stage=1 + (i % 4 >= 2), weight=1.0), gt, lq)
    writer.close()
    return folder


def write_image_index(folder: Path, names: list[str], size: int = 48, ext: str = "jpg") -> pd.DataFrame:
    """An index of whole-image samples (one file per name, content derived from the name), sorted by id."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names:
        img = smooth_images(1, size, seed=int(hashlib.sha256(name.encode()).hexdigest()[:8], 16))[0]
        path = folder / f"{name}.{ext}"
        Image.fromarray(img).save(path)
        rows.append(dict(id=name, gt_path=str(path), lq_path=str(path), x=0, y=0, w=size, h=size, width=size,
                         height=size, hash=file_hash(path)[:16]))
    return pd.DataFrame(rows).sort_values("id").reset_index(drop=True)
