"""Synthetic degradations for all-in-one image restoration training pairs.

Each degradation maps a clean HxWx3 uint8 RGB image to a degraded one of the
same shape. Outputs are a pure function of (image, spec, seed).
"""

from __future__ import annotations

import dataclasses
import io
import math
import numbers
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from PIL import Image
from scipy import ndimage, signal

TYPES = ("noise", "rain", "haze", "blur", "lowlight", "jpeg")
BLUR_KINDS = ("defocus", "motion")


@dataclass(frozen=True)
class DegradationSpec:
    type: str  # one of TYPES
    name: str = ""  # task name; derived from the parameters when empty
    sigma: float = 25.0  # noise std on the 0..255 scale
    amount: float = 0.5  # rain streak density / haze thickness, 0..1
    kind: str = "defocus"  # blur: "defocus" or "motion"
    radius: float = 2.0  # blur: disk radius / motion half-length in px
    gamma: float = 2.0  # lowlight: x ** gamma ...
    scale: float = 0.6  # ... * scale
    quality: int = 20  # jpeg quality, 1..100

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"unknown degradation type {self.type!r}; expected one of {TYPES}")
        if not isinstance(self.name, str):
            raise ValueError(f"name must be a string, got {self.name!r}")
        if self.kind not in BLUR_KINDS:
            raise ValueError(f"unknown blur kind {self.kind!r}; expected one of {BLUR_KINDS}")
        for key in ("sigma", "amount", "radius", "gamma", "scale"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"{key} must be a finite number, got {value!r}")
        if isinstance(self.quality, bool) or not isinstance(self.quality, numbers.Integral):
            raise ValueError(f"quality must be an integer, got {self.quality!r}")
        if self.sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {self.sigma}")
        if not 0.0 <= self.amount <= 1.0:
            raise ValueError(f"amount must be in [0, 1], got {self.amount}")
        if self.radius < 0:
            raise ValueError(f"radius must be >= 0, got {self.radius}")
        if self.gamma <= 0:
            raise ValueError(f"gamma must be > 0, got {self.gamma}")
        if not 0.0 < self.scale <= 1.0:
            raise ValueError(f"scale must be in (0, 1], got {self.scale}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"quality must be in 1..100, got {self.quality}")

    @property
    def task(self) -> str:
        if self.name:
            return self.name
        if self.type == "noise":
            return f"noise{self.sigma:g}"
        if self.type == "blur":
            return f"blur_{self.kind}"
        if self.type == "jpeg":
            return f"jpeg{self.quality}"
        return self.type

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DegradationSpec":
        if not isinstance(d, Mapping):
            raise ValueError(f"degradation spec must be a mapping, got {type(d).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in d if k not in fields)
        if unknown:
            raise ValueError(f"unknown degradation spec key(s) {unknown}; allowed keys: {sorted(fields)}")
        if "type" not in d:
            raise ValueError("degradation spec is missing required key 'type'")
        kwargs = dict(d)
        # Config files may give 20.0 for an int or 25 for a float; normalise.
        if "quality" in kwargs:
            q = kwargs["quality"]
            if isinstance(q, numbers.Real) and not isinstance(q, bool) and float(q).is_integer():
                kwargs["quality"] = int(q)
        for key in ("sigma", "amount", "radius", "gamma", "scale"):
            v = kwargs.get(key)
            if isinstance(v, numbers.Real) and not isinstance(v, bool):
                kwargs[key] = float(v)
        return cls(**kwargs)


def degrade(clean: np.ndarray, spec: DegradationSpec, seed: int) -> np.ndarray:
    """Return a degraded copy of `clean` (HxWx3 uint8); deterministic in `seed`."""
    clean = np.asarray(clean)
    if clean.dtype != np.uint8 or clean.ndim != 3 or clean.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 image, got shape {clean.shape} dtype {clean.dtype}")
    if not isinstance(spec, DegradationSpec):
        raise ValueError(f"spec must be a DegradationSpec, got {type(spec).__name__}")
    rng = np.random.default_rng(seed)
    if spec.type == "jpeg":
        return _jpeg(clean, spec.quality)
    x = clean.astype(np.float32) / 255.0
    fn = {"noise": _noise, "rain": _rain, "haze": _haze, "blur": _blur, "lowlight": _lowlight}[spec.type]
    y = fn(x, spec, rng)
    return np.clip(np.rint(y * 255.0), 0, 255).astype(np.uint8)


# --- degradations (float32 images in [0, 1]) --------------------------------


def _noise(x: np.ndarray, spec: DegradationSpec, rng: np.random.Generator) -> np.ndarray:
    return x + rng.standard_normal(x.shape, dtype=np.float32) * np.float32(spec.sigma / 255.0)


def _rain(x: np.ndarray, spec: DegradationSpec, rng: np.random.Generator) -> np.ndarray:
    h, w = x.shape[:2]
    size = min(h, w)
    # Streak geometry scales with the image so rain looks alike at any resolution.
    length = max(3.0, size * rng.uniform(0.04, 0.08))
    angle = np.deg2rad(rng.uniform(-20.0, 20.0))  # from vertical
    width = 0.4 * max(1.0, size / 512.0)
    k = _line_kernel(length, angle + np.pi / 2, _streak_profile)
    k = ndimage.gaussian_filter(k, width)
    k /= k.max()
    # Seed drops on a canvas padded by the kernel so streaks also enter from outside.
    ch, cw = h + k.shape[0] - 1, w + k.shape[1] - 1
    n = rng.binomial(ch * cw, min(1.0, spec.amount * 0.15 / length))
    drops = np.zeros(ch * cw, np.float32)
    drops[rng.integers(0, ch * cw, n)] = rng.uniform(0.3, 1.0, n)
    streaks = signal.fftconvolve(drops.reshape(ch, cw), k.astype(np.float32), mode="valid")
    rain = np.clip(streaks, 0.0, 1.0)[..., None] * np.float32(rng.uniform(0.7, 0.9))
    return 1.0 - (1.0 - x) * (1.0 - rain)  # screen blend: rain only brightens


def _streak_profile(s: np.ndarray) -> np.ndarray:
    return np.sin(np.pi * s) ** 0.5  # streaks fade out at both ends


def _haze(x: np.ndarray, spec: DegradationSpec, rng: np.random.Generator) -> np.ndarray:
    h, w = x.shape[:2]
    # Depth: far at the top, near at the bottom, plus a smooth random field
    # (low-order cosine series, so it is resolution independent).
    order = 5
    coef = rng.standard_normal((order, order)) / (1.0 + np.add.outer(np.arange(order), np.arange(order)))
    coef[0, 0] = 0.0
    cy = np.cos(np.pi * np.outer((np.arange(h) + 0.5) / h, np.arange(order)))
    cx = np.cos(np.pi * np.outer((np.arange(w) + 0.5) / w, np.arange(order)))
    field = (cy @ coef @ cx.T).astype(np.float32)
    field /= max(float(np.abs(field).max()), 1e-6)
    ramp = np.linspace(1.0, 0.2, h, dtype=np.float32)[:, None]
    depth = np.clip(ramp + 0.25 * field, 0.0, 1.0)
    t = np.exp(-3.0 * spec.amount * depth)[..., None]
    airlight = np.float32(rng.uniform(0.8, 0.95))
    return x * t + airlight * (1.0 - t)


def _blur(x: np.ndarray, spec: DegradationSpec, rng: np.random.Generator) -> np.ndarray:
    if spec.kind == "defocus":
        k = _disk_kernel(spec.radius)
    else:
        k = _line_kernel(2 * spec.radius + 1, rng.uniform(0.0, np.pi))
        k /= k.sum()
    return _convolve_reflect(x, k)


def _lowlight(x: np.ndarray, spec: DegradationSpec, rng: np.random.Generator) -> np.ndarray:
    y = np.float32(spec.scale) * x ** np.float32(spec.gamma)
    # Sensor-like noise: a signal-dependent shot term plus a small read-noise floor.
    std = np.sqrt(0.002 * y + 0.01**2)
    return y + std * rng.standard_normal(x.shape, dtype=np.float32)


def _jpeg(clean: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(clean, "RGB").save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


# --- kernels -----------------------------------------------------------------


def _disk_kernel(radius: float) -> np.ndarray:
    """Anti-aliased disk (pixel coverage by 8x8 supersampling), sums to 1."""
    if radius < 0.5:
        return np.ones((1, 1), np.float32)
    r = int(math.ceil(radius))
    ss = 8
    c = (np.arange((2 * r + 1) * ss) + 0.5) / ss - (r + 0.5)
    inside = (c[:, None] ** 2 + c[None, :] ** 2) <= radius**2
    k = inside.reshape(2 * r + 1, ss, 2 * r + 1, ss).mean(axis=(1, 3)).astype(np.float32)
    return k / k.sum()


def _line_kernel(length: float, angle: float, profile=None) -> np.ndarray:
    """Thin anti-aliased line of `length` px through the centre, `angle` from the x axis.

    Pixels on the line get weight ~1 (times `profile(s)`, s in [0, 1] along the line).
    """
    half = (length - 1) / 2.0
    r = int(math.ceil(half)) + 1
    n = max(2, int(math.ceil(length * 4)))
    s = np.linspace(0.0, 1.0, n)
    t = (s - 0.5) * 2 * half
    px, py = r + t * np.cos(angle), r - t * np.sin(angle)
    wgt = np.full(n, length / n) if profile is None else profile(s) * (length / n)
    k = np.zeros((2 * r + 1, 2 * r + 1), np.float64)
    # Bilinear splat of the dense samples onto the grid.
    x0, y0 = np.floor(px).astype(int), np.floor(py).astype(int)
    fx, fy = px - x0, py - y0
    for dy, dx, wt in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        np.add.at(k, (y0 + dy, x0 + dx), wgt * wt)
    return k.astype(np.float32)


def _convolve_reflect(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Convolve each channel of HxWxC `x` with `k`, reflecting at the edges."""
    if k.shape == (1, 1):
        return x * k[0, 0]
    ph, pw = k.shape[0] // 2, k.shape[1] // 2
    # numpy "symmetric" == scipy.ndimage "reflect" (edge pixel repeated).
    xp = np.pad(x, ((ph, ph), (pw, pw), (0, 0)), mode="symmetric")
    return signal.fftconvolve(xp, k[:, :, None], mode="valid", axes=(0, 1))
