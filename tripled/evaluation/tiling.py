"""Tiled inference with overlap blending, so a 4K image is restored in bounded memory.

Each tile's output is trusted only away from its inner edges: the blending weight is 0 for the
first quarter of the overlap, ramps linearly to 1 over its middle half, and is 1 beyond. A model
whose receptive field reaches at most overlap/4 pixels therefore gives exactly the whole-image
result; a model with global context (NAFNet's channel attention) gives a close approximation.
"""
from __future__ import annotations

from typing import Callable

import torch


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size `tile` covering [0, length), neighbours sharing >= `overlap`."""
    if tile <= overlap:
        raise ValueError(f"tile ({tile}) must be larger than overlap ({overlap})")
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def _ramp(size: int, overlap: int, rising: bool, falling: bool) -> torch.Tensor:
    """1-D blending weight of one tile; `rising`/`falling`: whether its start/end edge is inner."""
    d = torch.arange(size, dtype=torch.float32)
    lo, width = overlap / 4, max(overlap / 2, 1.0)
    w = torch.ones(size)
    if rising:
        w = torch.minimum(w, ((d + 0.5 - lo) / width).clamp(0, 1))
    if falling:
        w = torch.minimum(w, ((size - d - 0.5 - lo) / width).clamp(0, 1))
    return w


@torch.no_grad()
def tiled_apply(fn: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, tile: int = 512,
                overlap: int = 64) -> torch.Tensor:
    """Apply `fn` (N,C,h,w) -> (N,C',h,w) to `image` (N,C,H,W) tile by tile; returns (N,C',H,W) float32.

    Only one tile's input and output are alive at a time, beside the full-size accumulators.
    """
    if image.ndim != 4:
        raise ValueError(f"expected an (N, C, H, W) tensor, got shape {tuple(image.shape)}")
    n, _, h, w = image.shape
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    out = weight = None
    for y in ys:
        th = min(tile, h)
        wy = _ramp(th, overlap, y > 0, y + th < h)
        for x in xs:
            tw = min(tile, w)
            wx = _ramp(tw, overlap, x > 0, x + tw < w)
            result = fn(image[:, :, y:y + th, x:x + tw]).float().cpu()
            if out is None:
                out = torch.zeros(n, result.shape[1], h, w)
                weight = torch.zeros(1, 1, h, w)
            win = wy[:, None] * wx[None, :]
            out[:, :, y:y + th, x:x + tw] += result * win
            weight[:, :, y:y + th, x:x + tw] += win
    return out / weight
