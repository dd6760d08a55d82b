"""torchrun support: one training process per device, joined in a process group from
torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT). Without torchrun: one process."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        """Rank 0 alone writes checkpoints and outputs."""
        return self.rank == 0


def current() -> World:
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size())
    return World()


@contextmanager
def launched(cuda: bool) -> Iterator[World]:
    """Join the process group torchrun set up (NCCL on GPUs, gloo on CPUs), or run alone."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield World()
        return
    if cuda:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        yield current()
    finally:
        dist.destroy_process_group()


def gather(t: torch.Tensor) -> torch.Tensor:
    """The ranks' equal-sized tensors concatenated in rank order (the tensor itself when alone)."""
    world = current()
    if world.size == 1:
        return t
    parts = [torch.empty_like(t) for _ in range(world.size)]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)
