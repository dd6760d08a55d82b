"""PromptIR (Potlapalli et al. 2023, "PromptIR: Prompting for All-in-One Blind Image Restoration"): a
Restormer-style U-Net (transposed channel attention, gated-dconv feed-forward) whose decoder levels are
conditioned on a prompt mixed from learned components by weights predicted from the features
themselves, so one model tells the degradations apart. A compact re-implementation, with the same
zero-initialised output conv as the NAFNet here.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from tripled.training.archs.common import LayerNorm2d, encode, pad_to_multiple


class ChannelAttention(nn.Module):
    """Restormer's MDTA: attention across channels (a C/heads square map per head), so its cost
    grows linearly with the pixel count and a 4K tile fits in memory."""

    def __init__(self, c: int, heads: int) -> None:
        super().__init__()
        if c % heads:
            raise ValueError(f"{c} channels do not split into {heads} heads")
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.qkv_dw = nn.Conv2d(3 * c, 3 * c, 3, padding=1, groups=3 * c)
        self.project = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv_dw(self.qkv(x)).reshape(n, 3, self.heads, c // self.heads, h * w).unbind(1)
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1) * self.temperature).softmax(-1)
        return self.project((attn @ v).reshape(n, c, h, w))


class GatedFeedForward(nn.Module):
    """Restormer's GDFN: a depthwise-conv branch gates the other through GELU."""

    def __init__(self, c: int, expansion: float) -> None:
        super().__init__()
        hidden = int(c * expansion)
        self.project_in = nn.Conv2d(c, 2 * hidden, 1)
        self.dw = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden)
        self.project_out = nn.Conv2d(hidden, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.dw(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)


class TransformerBlock(nn.Module):
    def __init__(self, c: int, heads: int, ffn_expansion: float = 2.66) -> None:
        super().__init__()
        self.norm1, self.attn = LayerNorm2d(c), ChannelAttention(c, heads)
        self.norm2, self.ffn = LayerNorm2d(c), GatedFeedForward(c, ffn_expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class PromptGenBlock(nn.Module):
    """PromptIR's prompt: `length` learned components, mixed by a softmax over a linear map of the
    globally pooled features, resized to the feature map and refined by a 3x3 conv."""

    def __init__(self, c: int, prompt_dim: int, length: int, size: int) -> None:
        super().__init__()
        self.components = nn.Parameter(torch.rand(1, length, prompt_dim, size, size))
        self.mix = nn.Linear(c, length)
        self.conv = nn.Conv2d(prompt_dim, prompt_dim, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        weights = self.mix(x.mean((2, 3))).softmax(dim=1)  # (n, length)
        prompt = (weights[:, :, None, None, None] * self.components).sum(1)
        return self.conv(F.interpolate(prompt, (h, w), mode="bilinear", align_corners=False))


class PromptIR(nn.Module):
    """A U-Net of transformer blocks; each decoder level below the top is prompted: its features
    and the prompt go through one more transformer block and are projected back."""

    def __init__(self, img_channel: int = 3, dim: int = 16, num_blocks: Sequence[int] = (1, 1, 2),
                 heads: Sequence[int] = (1, 2, 4), refinement_blocks: int = 1, ffn_expansion: float = 2.66,
                 prompt_length: int = 5, prompt_size: int = 16) -> None:
        super().__init__()
        if len(num_blocks) != len(heads) or len(num_blocks) < 2:
            raise ValueError(f"num_blocks and heads need one entry per level (at least 2): {num_blocks} vs {heads}")
        dims = [dim * 2**i for i in range(len(num_blocks))]

        def blocks(c: int, h: int, n: int) -> nn.Sequential:
            return nn.Sequential(*[TransformerBlock(c, h, ffn_expansion) for _ in range(n)])

        self.intro = nn.Conv2d(img_channel, dim, 3, padding=1)
        self.encoders = nn.ModuleList(blocks(c, h, n) for c, h, n in zip(dims[:-1], heads, num_blocks))
        self.downs = nn.ModuleList(nn.Sequential(nn.Conv2d(c, c // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))
                                   for c in dims[:-1])
        self.latent = blocks(dims[-1], heads[-1], num_blocks[-1])
        # Decoder levels from the bottom up: prompt the features, then upsample and merge the skip.
        self.prompts = nn.ModuleList(PromptGenBlock(c, c, prompt_length, prompt_size) for c in dims[:0:-1])
        self.prompted = nn.ModuleList(blocks(2 * c, h, 1) for c, h in zip(dims[:0:-1], heads[:0:-1]))
        self.reduce_prompted = nn.ModuleList(nn.Conv2d(2 * c, c, 1, bias=False) for c in dims[:0:-1])
        self.ups = nn.ModuleList(nn.Sequential(nn.Conv2d(c, 2 * c, 1, bias=False), nn.PixelShuffle(2))
                                 for c in dims[:0:-1])
        self.reduce_skip = nn.ModuleList(nn.Conv2d(2 * c, c, 1, bias=False) for c in dims[-2::-1])
        self.decoders = nn.ModuleList(blocks(c, h, n)
                                      for c, h, n in zip(dims[-2::-1], heads[-2::-1], num_blocks[-2::-1]))
        self.refinement = blocks(dim, heads[0], refinement_blocks)
        self.ending = nn.Conv2d(dim, img_channel, 3, padding=1)
        nn.init.zeros_(self.ending.weight)
        nn.init.zeros_(self.ending.bias)
        self.padder_size = 2 ** (len(dims) - 1)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        _, _, h, w = inp.shape
        inp = pad_to_multiple(inp, self.padder_size)
        x, skips = encode(self.intro(inp), self.encoders, self.downs)
        x = self.latent(x)
        for prompt, prompted, reduce_p, up, reduce_s, decoder, skip in zip(
                self.prompts, self.prompted, self.reduce_prompted, self.ups, self.reduce_skip, self.decoders,
                reversed(skips)):
            x = reduce_p(prompted(torch.cat([x, prompt(x)], 1)))
            x = decoder(reduce_s(torch.cat([up(x), skip], 1)))
        x = inp + self.ending(self.refinement(x))
        return x[:, :, :h, :w]
