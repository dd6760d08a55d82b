"""Which device a stage computes on."""
from __future__ import annotations

import torch


def pick_device(choice: str) -> torch.device:
    """'cuda', 'cpu', or 'auto' (CUDA when present); under torchrun, this rank's GPU."""
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
