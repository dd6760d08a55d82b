"""Restoration architectures (one file each) and their registry: `build_model(arch, **kwargs)`.

To add one: write `archs/<name>.py` with an nn.Module mapping an Nx3xHxW image in [0, 1] to the
restored image (ideally starting as the identity), and add it to ARCHS.
"""
from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator
from torch import nn

from tripled.training.archs.nafnet import NAFNet
from tripled.training.archs.promptir import PromptIR

ARCHS: dict[str, type[nn.Module]] = {"nafnet": NAFNet, "promptir": PromptIR}


def build_model(arch: str, **kwargs) -> nn.Module:
    """Instantiate ``ARCHS[arch](**kwargs)``."""
    try:
        cls = ARCHS[arch]
    except KeyError:
        raise ValueError(f"unknown arch {arch!r}; known: {', '.join(sorted(ARCHS))}") from None
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise TypeError(f"bad arguments for arch {arch!r}: {e}") from e


def _known(arch: str) -> str:
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; known: {', '.join(sorted(ARCHS))}")
    return arch


ArchName = Annotated[str, AfterValidator(_known)]  # a params field naming an architecture of ARCHS
