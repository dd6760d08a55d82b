"""ViT (timm) features of 128x128 thumbnails and the full-resolution complexity labels, in a zarr store."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import timm
import torch
import zarr
from torch import nn
from tqdm import tqdm

from tripled.complexity import complexity_labels
from tripled.io import read_sample, read_thumbnail, resize, row_box, sample_path
from tripled.params import LABELS, FeatureParams

SHARD_ROWS = 16384  # rows per zarr shard (one file each): 1 M rows -> 62 files
CHUNK_ROWS = 1024


@dataclass(frozen=True)
class Backbone:
    """A timm ViT and how to feed it: recorded in models/vit/config.json."""

    model: nn.Module
    name: str
    kwargs: dict
    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Bx3xHxW in [0, 1] -> normalised input at the backbone's thumbnail size (differentiable)."""
        if images.shape[-2:] != (self.size, self.size):
            images = nn.functional.interpolate(images, size=(self.size, self.size), mode="bilinear",
                                               antialias=True, align_corners=False)
        mean = images.new_tensor(self.mean).view(1, 3, 1, 1)
        std = images.new_tensor(self.std).view(1, 3, 1, 1)
        return (images - mean) / std

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(self.prepare(images))

    def save(self, folder: Path, weights: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.model.state_dict(), folder / "backbone.pt")
        config = dict(name=self.name, kwargs=self.kwargs, size=self.size, mean=self.mean, std=self.std,
                      weights=weights, dim=self.model.num_features)
        (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def create_backbone(p: FeatureParams) -> Backbone:
    """The timm model named by params; `weights` says where its weights come from, never silently."""
    kwargs = dict(p.model_kwargs, img_size=p.thumb_size, num_classes=0)
    torch.manual_seed(p.seed)  # deterministic initialisation (scratch weights, heads)
    if p.weights == "scratch":
        model = timm.create_model(p.backbone, pretrained=False, **kwargs)
    elif p.weights == "timm":
        model = timm.create_model(p.backbone, pretrained=True, **kwargs)
    else:
        path = Path(p.weights)
        if not path.is_file():
            raise FileNotFoundError(f"features.weights: no weights file at {path} (or use 'scratch' / 'timm')")
        model = timm.create_model(p.backbone, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), **kwargs)
    cfg = model.pretrained_cfg
    return Backbone(model, p.backbone, dict(p.model_kwargs), p.thumb_size,
                    tuple(cfg.get("mean", (0.5, 0.5, 0.5))), tuple(cfg.get("std", (0.5, 0.5, 0.5))))


def load_backbone(folder: Path) -> Backbone:
    config = json.loads((folder / "config.json").read_text())
    model = timm.create_model(config["name"], pretrained=False, img_size=config["size"], num_classes=0,
                              **config["kwargs"])
    model.load_state_dict(torch.load(folder / "backbone.pt", map_location="cpu", weights_only=True))
    return Backbone(model.eval(), config["name"], config["kwargs"], config["size"],
                    tuple(config["mean"]), tuple(config["std"]))


def thumbnail(row, view: str, size: int) -> np.ndarray:
    if row_box(row) == (0, 0, int(row.width), int(row.height)):  # whole image: reduced decoding
        return read_thumbnail(sample_path(row, view), size)
    return resize(read_sample(row, view), size)


def label_sample(index: pd.DataFrame, n: int, seed: int) -> np.ndarray:
    """Sorted row numbers of the samples whose full-resolution labels are computed."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(len(index), size=min(n, len(index)), replace=False))


def compute_labels(index: pd.DataFrame, rows: np.ndarray, p: FeatureParams) -> tuple[np.ndarray, np.ndarray]:
    """Labels (full resolution) and thumbnails of the labelled rows."""
    labels = np.zeros((len(rows), len(LABELS)), np.float32)
    thumbs = np.zeros((len(rows), p.thumb_size, p.thumb_size, 3), np.uint8)
    for k, i in enumerate(tqdm(rows, desc="extract: labels", unit="img")):
        full = read_sample(index.iloc[i], p.view)
        labels[k] = complexity_labels(full)
        thumbs[k] = resize(full, p.thumb_size)
    return labels, thumbs


def _batch(thumbs: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(thumbs).permute(0, 3, 1, 2).float().div(255.0)


def train_scratch(backbone: Backbone, thumbs: np.ndarray, labels: np.ndarray, p: FeatureParams) -> list[float]:
    """Offline weights: fit the ViT to regress the (standardised) complexity labels from thumbnails."""
    rng = np.random.default_rng(p.seed)
    target = torch.from_numpy((labels - labels.mean(0)) / (labels.std(0) + 1e-8))
    head = nn.Linear(backbone.model.num_features, labels.shape[1])
    params = list(backbone.model.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=p.scratch_lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=p.scratch_lr, total_steps=max(p.scratch_steps, 1))
    backbone.model.train()
    losses = []
    for _ in tqdm(range(p.scratch_steps), desc="extract: train ViT (scratch)", unit="step"):
        idx = rng.choice(len(thumbs), size=min(p.batch_size, len(thumbs)), replace=False)
        x = _batch(thumbs[idx])
        if rng.random() < 0.5:
            x = x.flip(-1)  # complexity is invariant to mirroring
        loss = nn.functional.mse_loss(head(backbone.embed(x)), target[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    backbone.model.eval()
    return losses


def open_store(path: Path, n: int, dim: int, attrs: dict) -> zarr.Group:
    group = zarr.open_group(path, mode="w")
    chunk = (min(CHUNK_ROWS, max(n, 1)),)
    shard = (min(SHARD_ROWS, -(-max(n, 1) // chunk[0]) * chunk[0]),)  # a whole number of chunks
    group.create_array("embedding", shape=(n, dim), chunks=chunk + (dim,), shards=shard + (dim,),
                       dtype="float16", fill_value=0)
    group.create_array("labels", shape=(n, len(LABELS)), chunks=chunk + (len(LABELS),),
                       shards=shard + (len(LABELS),), dtype="float32", fill_value=float("nan"))
    group.attrs.update(attrs)
    return group


@torch.no_grad()
def embed_index(backbone: Backbone, index: pd.DataFrame, group: zarr.Group, p: FeatureParams) -> None:
    """Embed every row, writing whole shards so that the store never holds a partly written shard."""
    emb = group["embedding"]
    shard = emb.shards[0]
    with tqdm(total=len(index), desc="extract: embed", unit="img") as bar:
        for start in range(0, len(index), shard):
            stop = min(start + shard, len(index))
            out = np.zeros((stop - start, emb.shape[1]), np.float16)
            for b in range(start, stop, p.batch_size):
                rows = index.iloc[b:min(b + p.batch_size, stop)]
                thumbs = np.stack([thumbnail(r, p.view, p.thumb_size) for r in rows.itertuples()])
                out[b - start:b - start + len(rows)] = backbone.embed(_batch(thumbs)).float().numpy()
                bar.update(len(rows))
            emb[start:stop] = out


def read_features(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    group = zarr.open_group(path, mode="r")
    return group["embedding"][:].astype(np.float32), group["labels"][:], dict(group.attrs)
