"""Complexity labels computed at full resolution: the targets the ViT learns to predict from thumbnails."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

LABELS = ("global_entropy", "local_entropy", "gradient")



def _grey(img: np.ndarray) -> np.ndarray:
    grey = img[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)  # round: truncation maps grey v to v-1


def _entropy(counts: np.ndarray) -> np.ndarray:
    p = counts / np.maximum(counts.sum(-1, keepdims=True), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.nansum(np.where(p > 0, p * np.log2(p), 0.0), axis=-1)


def global_entropy(grey: np.ndarray) -> float:
    """Shannon entropy (bits) of the 256-level grey histogram."""
    return float(_entropy(np.bincount(grey.ravel(), minlength=256).astype(np.float64)))


def local_entropy(grey: np.ndarray, block: int = 16, levels: int = 32) -> float:
    """Mean entropy of non-overlapping blocks (levels quantised): texture, not just global spread."""
    h, w = (grey.shape[0] // block) * block, (grey.shape[1] // block) * block
    if h == 0 or w == 0:
        return global_entropy(grey)
    q = (grey[:h, :w].astype(np.int64) * levels) // 256
    blocks = q.reshape(h // block, block, w // block, block).transpose(0, 2, 1, 3).reshape(-1, block * block)
    offsets = np.arange(len(blocks))[:, None] * levels
    counts = np.bincount((blocks + offsets).ravel(), minlength=len(blocks) * levels).reshape(-1, levels)
    return float(_entropy(counts.astype(np.float64)).mean())


def gradient_energy(grey: np.ndarray) -> float:
    """Mean Sobel gradient magnitude on the 0..1 scale."""
    g = grey.astype(np.float32) / 255.0
    return float(np.hypot(ndimage.sobel(g, 0), ndimage.sobel(g, 1)).mean())


def complexity_labels(img: np.ndarray) -> np.ndarray:
    """The labels of LABELS, in that order, for an HxWx3 uint8 image."""
    grey = _grey(img)
    return np.array([global_entropy(grey), local_entropy(grey), gradient_energy(grey)], dtype=np.float32)


def combine(labels: np.ndarray, which: str) -> np.ndarray:
    """One complexity target per row: a named label, or the mean of all z-scored labels."""
    if which != "combined":
        return labels[:, LABELS.index(which)]
    z = (labels - np.nanmean(labels, 0)) / (np.nanstd(labels, 0) + 1e-8)
    return z.mean(1)
