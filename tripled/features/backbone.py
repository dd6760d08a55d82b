"""The ViT backbone (timm) that embeds 128x128 thumbnails: where its weights come from, how it is fed,
its offline (scratch) fit to the complexity labels, and the fingerprint of what it computes."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import timm
import torch
from torch import nn
from tqdm import tqdm

from tripled.features.params import FeatureParams


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


def label_sample(index: pd.DataFrame, n: int, seed: int) -> np.ndarray:
    """Sorted row numbers of the samples whose full-resolution labels are computed.

    The n rows whose content hash ranks first under a seeded hash: adding rows to the index keeps the
    sample, except for new rows that rank in, so labels of old rows come from the cache.
    """
    rank = [hashlib.sha256(f"{seed}|{h}".encode()).digest() for h in index["hash"]]
    order = sorted(range(len(index)), key=lambda i: (rank[i], i))
    return np.sort(np.array(order[:min(n, len(index))], dtype=np.int64))


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


def fingerprint(backbone: Backbone, *parts: object) -> str:
    """Identity of what the backbone computes: its config and weights, plus `parts` (code, device...)."""
    h = hashlib.sha256(json.dumps(dict(name=backbone.name, kwargs=backbone.kwargs, size=backbone.size,
                                       mean=backbone.mean, std=backbone.std), sort_keys=True).encode())
    for name, value in sorted(backbone.model.state_dict().items()):
        h.update(name.encode())
        h.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    for part in parts:
        h.update(repr(part).encode())
    return h.hexdigest()[:16]


@torch.no_grad()
def embed_thumbs(backbone: Backbone, thumbs: np.ndarray | torch.Tensor, device: torch.device, bf16: bool) -> np.ndarray:
    """float16 embeddings of a BxHxWx3 uint8 batch, under bf16 autocast when `bf16`."""
    x = torch.as_tensor(thumbs).to(device).permute(0, 3, 1, 2).float().div(255.0)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        out = backbone.embed(x)
    return out.float().cpu().numpy().astype(np.float16)
