"""Which device a stage computes on, in which precision, and how many CPU threads it may use."""
from __future__ import annotations

import math
import os
from pathlib import Path

import torch

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>" or "max <period>"
CPUINFO = Path("/proc/cpuinfo")


def pick_device(choice: str) -> torch.device:
    """'cuda', 'cpu', or 'auto' (CUDA when present); under torchrun, this rank's GPU."""
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def cpu_flags(cpuinfo: Path = CPUINFO) -> set[str]:
    """The CPU's feature flags (empty where /proc/cpuinfo is missing)."""
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        return set()
    return set(next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), []))


def cpu_bf16(cpuinfo: Path = CPUINFO) -> bool:
    """Whether the CPU computes bf16 natively (AVX512-BF16 or AMX), where bf16 autocast beats fp32."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags(cpuinfo))


def use_bf16(precision: str, device: torch.device) -> bool:
    """A stage's `precision` on this device: bf16 autocast, or fp32. `auto` is bf16 on CUDA and on a CPU
    that computes bf16 natively, fp32 elsewhere."""
    if precision != "auto":
        return precision == "bf16"
    return device.type == "cuda" or (device.type == "cpu" and cpu_bf16())


def autocast(precision: str, device: torch.device) -> torch.autocast:
    """bf16 autocast on `device` where `precision` asks for it there, else a disabled one (fp32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16(precision, device))


def available_cores(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The cores this process may use: its CPU affinity, capped by a container's CPU quota. (A container
    limited to 2 CPUs on a 64-core host otherwise runs 64 threads that wait for each other.)"""
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


def use_available_cores() -> int:
    """torch's threads set to the available cores, unless OMP_NUM_THREADS chose (the bench splits them)."""
    if not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(available_cores())
    return torch.get_num_threads()
