"""The refine stage: a lightweight CNN nudges the selected pairs so that their ViT-feature distribution
matches the full set's, while an L2 term keeps them close to the originals."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn
from tqdm import tqdm

from tripled.device import autocast
from tripled.evaluation.metrics import psnr, to_tensor, to_uint8
from tripled.features.backbone import Backbone
from tripled.params import PRECISION_HELP, Precision, Section

MMD_REFERENCE = 1024  # rows of the full set that MMD compares against


class RefineParams(Section):
    enabled: bool = True
    steps: int = Field(60, ge=0)
    lr: float = Field(1e-3, gt=0)
    distance: Literal["kl", "mmd"] = "kl"
    fidelity: float = Field(10.0, ge=0.0, description="weight of the L2 term keeping images close")
    width: int = Field(16, ge=1)
    blocks: int = Field(2, ge=1)
    batch_size: int = Field(64, ge=1)
    precision: Precision = Field("auto", description=PRECISION_HELP)
    seed: int = 0


class RefineNet(nn.Module):
    """Residual convs whose last layer starts at zero: the identity until trained."""

    def __init__(self, width: int = 16, blocks: int = 2):
        super().__init__()
        self.head = nn.Conv2d(3, width, 3, padding=1)
        self.body = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
                          nn.Conv2d(width, width, 3, padding=1)) for _ in range(blocks))
        self.tail = nn.Conv2d(width, 3, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x)
        for block in self.body:
            h = h + block(h)
        return (x + self.tail(h)).clamp(0, 1)


class FeatureDistance:
    """Distance of a batch of features to the full set's: diagonal-Gaussian KL (per dimension) or MMD."""

    def __init__(self, full: np.ndarray, seed: int):
        full = torch.from_numpy(np.asarray(full, np.float32))
        self.mu, self.var = full.mean(0), full.var(0) + 1e-6
        self.seed = seed
        self.ref = full[self._sample(len(full))]
        self.bandwidth = torch.cdist(self.ref, self.ref).median().clamp_min(1e-6)

    def _sample(self, n: int) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        return np.sort(rng.choice(n, size=min(MMD_REFERENCE, n), replace=False))

    def kl(self, feats: torch.Tensor) -> torch.Tensor:
        mu, var = feats.mean(0), feats.var(0, unbiased=False) + 1e-6
        return 0.5 * (var / self.var + (mu - self.mu) ** 2 / self.var - 1 + torch.log(self.var / var)).mean()

    def mmd(self, feats: torch.Tensor) -> torch.Tensor:
        def k(a, b):
            return torch.exp(-torch.cdist(a, b) ** 2 / (2 * self.bandwidth ** 2)).mean()

        # A set larger than the reference (method full) is subsampled too: its n x n kernel took 23 GB
        # and 7 minutes on 52,600 samples.
        feats = feats[torch.from_numpy(self._sample(len(feats)))] if len(feats) > MMD_REFERENCE else feats
        return k(feats, feats) + k(self.ref, self.ref) - 2 * k(feats, self.ref)

    def __call__(self, feats: torch.Tensor, kind: str) -> torch.Tensor:
        return self.kl(feats) if kind == "kl" else self.mmd(feats)


def _embed(backbone: Backbone, images: list[torch.Tensor]) -> torch.Tensor:
    return backbone.model(torch.cat([backbone.prepare(x) for x in images])).float()


def _runs(images: list[torch.Tensor], idx) -> Iterator[list[int]]:
    """`idx` in order, cut where the image size changes: each run goes through a network as one batch
    (a distilled set of tiles is one run; one image at a time was 20 times slower)."""
    run: list[int] = []
    for i in idx:
        if run and images[i].shape != images[run[0]].shape:
            yield run
            run = []
        run.append(int(i))
    if run:
        yield run


def _batched(net: nn.Module, images: list[torch.Tensor], idx) -> list[tuple[list[int], torch.Tensor]]:
    return [(run, net(torch.cat([images[i] for i in run]))) for run in _runs(images, idx)]


def refine(pairs: list[tuple[np.ndarray, np.ndarray]], view: str, backbone: Backbone, full: np.ndarray,
           p: RefineParams) -> tuple[list[tuple[np.ndarray, np.ndarray]], dict, dict[str, np.ndarray]]:
    """Refined (gt, lq) pairs, a report of the feature distances before and after, and the subset's
    features before and after (for the projection plot).

    The same network, with the same weights, is applied to the clean and the degraded image of each
    pair, so the pair stays consistent; the ViT sees the `view` side, as it did in extract.
    """
    torch.manual_seed(p.seed)
    rng = np.random.default_rng(p.seed)
    dist = FeatureDistance(full, p.seed)
    backbone.model.eval().requires_grad_(False)
    gts = [to_tensor(g) for g, _ in pairs]
    lqs = [to_tensor(q) for _, q in pairs]
    views = gts if view == "gt" else lqs
    # untrained, the net is the identity (its last layer starts at zero): without steps, skip its passes
    net = RefineNet(p.width, p.blocks) if p.steps else nn.Identity()
    amp = autocast(p.precision, torch.device("cpu"))  # the refined images themselves are made in fp32
    opt = torch.optim.Adam(net.parameters(), lr=p.lr) if p.steps else None

    chunks = [range(i, min(i + p.batch_size, len(pairs))) for i in range(0, len(pairs), p.batch_size)]

    @torch.no_grad()
    def distances() -> tuple[dict, torch.Tensor]:
        with amp:
            feats = torch.cat([_embed(backbone, [out for _, out in _batched(net, views, c)]) for c in chunks])
        return dict(kl=dist.kl(feats).item(), mmd=dist.mmd(feats).item()), feats

    before, feats_before = distances()
    losses = []
    for _ in tqdm(range(p.steps), desc="refine", unit="step"):
        idx = np.sort(rng.choice(len(pairs), size=min(p.batch_size, len(pairs)), replace=False))
        fidelity, seen = 0.0, []
        with amp:
            for (run, gt), (_, lq) in zip(_batched(net, gts, idx), _batched(net, lqs, idx)):
                for out, original in ((gt, gts), (lq, lqs)):  # the mean of each image's squared error
                    error = out.float() - torch.cat([original[i] for i in run])
                    fidelity = fidelity + error.pow(2).flatten(1).mean(1).sum()
                seen.append(gt if view == "gt" else lq)
            feats = _embed(backbone, seen)
        loss = dist(feats, p.distance) + p.fidelity * fidelity / len(idx)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # without steps the net is still the identity: skip a second pass of the ViT over the subset
    after, feats_after = distances() if p.steps else (before, feats_before)

    out = []
    with torch.no_grad():
        for c in chunks:
            for (_, g), (_, q) in zip(_batched(net, gts, c), _batched(net, lqs, c)):
                out += [(to_uint8(a[None]), to_uint8(b[None])) for a, b in zip(g, q)]
    change = [psnr(to_tensor(a), to_tensor(b)).item() for (a, _), (b, _) in zip(out, pairs)]
    report = dict(distance=p.distance, steps=p.steps, samples=len(pairs),
                  kl_before=before["kl"], kl_after=after["kl"], mmd_before=before["mmd"], mmd_after=after["mmd"],
                  before=before[p.distance], after=after[p.distance],
                  gt_psnr_vs_original=float(np.mean(np.minimum(change, 100.0))),
                  final_loss=losses[-1] if losses else None)
    return out, report, dict(selected=feats_before.numpy(), refined=feats_after.numpy())

