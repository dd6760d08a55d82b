"""Restoring images with a trained model: tile by tile, so a 4K image runs in bounded memory."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from tripled.evaluation.tiling import tile_starts, tiled_apply
from tripled.training.archs import build_model


def load_restorer(path: Path | str) -> nn.Module:
    """A restorer saved by the train stage: weights in `path`, arch and kwargs in the .json beside it."""
    path = Path(path)
    config_path = path.with_suffix(".json")
    if not path.is_file():
        raise FileNotFoundError(f"no model weights at {path}")
    if not config_path.is_file():
        raise FileNotFoundError(f"no model config at {config_path} (written by the train stage beside the weights)")
    config = json.loads(config_path.read_text())
    model = build_model(config["arch"], **config["kwargs"])
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


@torch.no_grad()
def restore(model: torch.nn.Module, lq: torch.Tensor, tile: int = 0, overlap: int = 0,
            device: torch.device = torch.device("cpu"), on_tile: Callable[[], None] | None = None) -> torch.Tensor:
    """The model's output on `device` for a CPU image (float in [0, 1], or uint8: converted tile by
    tile, so the input costs a quarter of the memory); an image larger than `tile` goes through in
    overlapping tiles, so a 4K image needs the memory of one tile. `on_tile` is called after each."""
    def fn(x: torch.Tensor) -> torch.Tensor:
        x = x.to(device)
        out = model(x.float().div_(255.0) if x.dtype == torch.uint8 else x).float().cpu()
        if on_tile is not None:
            on_tile()
        return out

    if tile and max(lq.shape[-2:]) > tile:
        return tiled_apply(fn, lq, tile, overlap)
    return fn(lq)


def tile_count(height: int, width: int, tile: int, overlap: int) -> int:
    return len(tile_starts(height, tile, overlap)) * len(tile_starts(width, tile, overlap))


@torch.no_grad()
def restore_image(model: nn.Module, image: np.ndarray, tile: int = 512, overlap: int = 64,
                  device: torch.device = torch.device("cpu"), on_tile: Callable[[], None] | None = None) -> np.ndarray:
    """Restore an HxWx3 uint8 image, tile by tile; returns HxWx3 uint8.

    The input stays uint8 (each tile becomes float on its own), so besides the model's activations on
    one tile, memory holds the image and tiled_apply's float accumulators only.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 image, got {image.dtype} {image.shape}")
    if not image.flags.writeable:  # decoded images are read-only views; torch wants its own
        image = image.copy()
    x = torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0)  # uint8, a view
    out = restore(model, x, tile, overlap, device, on_tile)[0].clamp_(0, 1)
    return out.mul_(255.0).round_().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
