"""Building blocks both architectures share."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad bottom/right so every downsampling step sees an even size."""
    _, _, h, w = x.shape
    return F.pad(x, (0, (multiple - w % multiple) % multiple, 0, (multiple - h % multiple) % multiple))


def encode(x: torch.Tensor, encoders: nn.ModuleList, downs: nn.ModuleList) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The U-Net's way down: each level's output is kept as the skip for the way up."""
    skips = []
    for encoder, down in zip(encoders, downs):
        x = encoder(x)
        skips.append(x)
        x = down(x)
    return x, skips


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dimension of an NxCxHxW tensor."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Statistics in float32: bf16/fp16 activations under autocast lose too much precision here.
        x32 = x.float()
        mu = x32.mean(dim=1, keepdim=True)
        var = (x32 - mu).pow(2).mean(dim=1, keepdim=True)
        y = (x32 - mu) * torch.rsqrt(var + self.eps)
        y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return y.to(x.dtype)
