"""Threads from the cores a process may actually use."""
import os

import torch

from tripled.device import autocast, available_cores, cpu_bf16, use_available_cores, use_bf16


def test_a_container_quota_caps_the_cores(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("max 100000\n")
    assert available_cores(cpu_max) == affinity
    cpu_max.write_text("50000 100000\n")  # half a CPU: one thread
    assert available_cores(cpu_max) == 1
    cpu_max.write_text(f"{150000 * affinity} 100000\n")  # a quota above the affinity: the affinity
    assert available_cores(cpu_max) == affinity
    assert available_cores(tmp_path / "missing") == affinity


def test_omp_num_threads_wins(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        torch.set_num_threads(1)
        assert use_available_cores() == 1
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert use_available_cores() == available_cores()
    finally:
        torch.set_num_threads(before)


def test_cpu_bf16_reads_the_cpu_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cases = (("fpu sse avx512f", False), ("fpu avx512f avx512_bf16", True), ("fpu amx_bf16 amx_tile", True))
    for flags, native in cases:
        cpuinfo.write_text(f"processor\t: 0\nmodel name\t: X\nflags\t\t: {flags}\n")
        assert cpu_bf16(cpuinfo) is native
    assert cpu_bf16(tmp_path / "missing") is False


def test_precision_picks_bf16_autocast_per_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert [use_bf16(p, cpu) for p in ("auto", "fp32", "bf16")] == [cpu_bf16(), False, True]
    assert [use_bf16(p, cuda) for p in ("auto", "fp32", "bf16")] == [True, False, True]
    conv = torch.nn.Conv2d(3, 4, 3)
    x = torch.rand(1, 3, 8, 8)
    with autocast("bf16", cpu):
        assert conv(x).dtype == torch.bfloat16
    with autocast("fp32", cpu):
        assert conv(x).dtype == torch.float32
