"""Image quality metrics (PSNR, SSIM) and the project's image <-> tensor conversions.

Both metrics are per image on NxCxHxW tensors and match scikit-image's
``peak_signal_noise_ratio`` / ``structural_similarity`` (Gaussian-window variant).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["mse", "psnr", "psnr_from_mse", "ssim", "to_tensor", "to_uint8"]

_SSIM_SIGMA = 1.5
_SSIM_RADIUS = 5  # skimage: int(truncate * sigma + 0.5) with truncate=3.5 -> 11x11 window
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"shape mismatch: {tuple(pred.shape)} vs {tuple(target.shape)}")
    if pred.dim() != 4:
        raise ValueError(f"expected NxCxHxW tensors, got shape {tuple(pred.shape)}")


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image mean squared error, shape (N,), in float64."""
    _check_pair(pred, target)
    return (pred.detach().double() - target.detach().double()).pow(2).flatten(1).mean(dim=1)


def psnr_from_mse(mse_value: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    # mse == 0 -> log10(inf) = inf, which is the conventional answer.
    return 10.0 * torch.log10(data_range**2 / mse_value)


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image PSNR in dB, shape (N,). Identical images give +inf."""
    return psnr_from_mse(mse(pred, target), data_range)


def _gaussian_1d(device: torch.device) -> torch.Tensor:
    x = torch.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1, dtype=torch.float64, device=device)
    g = torch.exp(-0.5 * (x / _SSIM_SIGMA) ** 2)
    return g / g.sum()


def ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image SSIM (Wang et al. 2004), shape (N,).

    Gaussian 11x11 window (sigma 1.5), K1=0.01, K2=0.03, population covariance.
    Only positions where the whole window fits are averaged, which is exactly
    the region skimage keeps after cropping its reflect-padded filter output.
    """
    _check_pair(pred, target)
    _, c, h, w = pred.shape
    win = 2 * _SSIM_RADIUS + 1
    if h < win or w < win:
        raise ValueError(f"images must be at least {win}x{win} for SSIM, got {h}x{w}")
    x = pred.detach().double()
    y = target.detach().double()
    # All five local statistics in one separable depthwise pass (the 2D Gaussian factorises).
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    g = _gaussian_1d(x.device)
    k = stack.shape[1]
    stack = F.conv2d(stack, g.view(1, 1, win, 1).expand(k, 1, win, 1), groups=k)
    stack = F.conv2d(stack, g.view(1, 1, 1, win).expand(k, 1, 1, win), groups=k)
    ux, uy, uxx, uyy, uxy = stack.split(c, dim=1)  # valid region only
    vx = uxx - ux * ux
    vy = uyy - uy * uy
    vxy = uxy - ux * uy
    c1 = (_SSIM_K1 * data_range) ** 2
    c2 = (_SSIM_K2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    # Every channel has the same valid size, so the mean of channel means is the full mean.
    return s.flatten(1).mean(dim=1)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 image -> 1x3xHxW float32 tensor in [0, 1]."""
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected HxWx3 uint8 image, got {img.dtype} {img.shape}")
    # decoded images are often read-only views (a cached decode); torch wants a writable array
    t = torch.from_numpy(np.require(img, requirements=("C", "W"))).permute(2, 0, 1).unsqueeze(0)
    return t.float().div_(255.0)


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """1x3xHxW or 3xHxW float tensor in [0, 1] -> HxWx3 uint8 (rounded, clipped)."""
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"expected a single image, got batch of {t.shape[0]}")
        t = t[0]
    if t.dim() != 3:
        raise ValueError(f"expected 3xHxW or 1x3xHxW tensor, got shape {tuple(t.shape)}")
    arr = t.detach().float().cpu().mul(255.0).round().clamp(0, 255).to(torch.uint8)
    return arr.permute(1, 2, 0).contiguous().numpy()
