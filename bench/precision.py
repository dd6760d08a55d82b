"""fp32 against bf16 autocast on this machine: training steps/s (the real loop, bench/train.py's
measurement, with the demo's model, crop and batch) and evaluation Mpixel/s (tiled restoration of one
image), the two precisions interleaved in one run so that a noisy machine slows both alike. Prints one
JSON object with the ratios and the CPU's bf16 features (AVX512-BF16, AMX).

    python bench/precision.py [--params params.yaml] [--repeats 3] [--steps 40] [--size 1024]
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: bench.common beside it

from bench.common import machine, provenance
from bench.train import measure
from tripled.device import autocast, use_available_cores
from tripled.evaluation.restore import restore_image
from tripled.params import load_section
from tripled.training.archs import build_model
from tripled.training.params import ModelParams

PRECISIONS = ("fp32", "bf16")


def eval_rate(model: torch.nn.Module, image: np.ndarray, precision: str, tile: int) -> float:
    """Mpixel/s of tiled restoration of `image` in `precision` on the CPU."""
    began = time.perf_counter()
    with autocast(precision, torch.device("cpu")):
        restore_image(model, image, tile=tile, overlap=tile // 8)
    return image.shape[0] * image.shape[1] / 1e6 / (time.perf_counter() - began)


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="sections model and train.")
@click.option("--repeats", type=int, default=3, show_default=True, help="interleaved rounds; the best of each is kept.")
@click.option("--steps", type=int, default=40, show_default=True, help="timed training steps per round.")
@click.option("--size", type=int, default=1024, show_default=True, help="side of the image restored per round.")
@click.option("--tile", type=int, default=256, show_default=True, help="restoration tile.")
def main(params_path, repeats, steps, size, tile) -> None:
    """Time training and evaluation in fp32 and in bf16 autocast, interleaved."""
    threads = use_available_cores()
    mp = load_section(ModelParams, "model", params_path)
    torch.manual_seed(0)
    model = build_model(mp.arch, **mp.kwargs).eval()
    image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    train = {p: [] for p in PRECISIONS}
    evaluate = {p: [] for p in PRECISIONS}
    for _ in range(repeats):
        for p in PRECISIONS:
            r = measure(params_path, device_choice="cpu", precision=p, steps=steps, warmup=3, images=4,
                        size="256x256")
            train[p].append(1000.0 / r["step_ms"])
            evaluate[p].append(eval_rate(model, image, p, tile))
    best = {p: dict(train_steps_per_s=round(max(train[p]), 3), eval_mpixel_per_s=round(max(evaluate[p]), 3))
            for p in PRECISIONS}
    ratio = {k: round(best["bf16"][key] / best["fp32"][key], 3)
             for k, key in (("train", "train_steps_per_s"), ("eval", "eval_mpixel_per_s"))}
    print(json.dumps(dict(
        **best, bf16_over_fp32=ratio, runs=dict(train=train, evaluate=evaluate), threads=threads, repeats=repeats,
        steps=steps, image=size, tile=tile,
        cpu_bf16=dict((k, machine()[k]) for k in ("avx512_bf16", "amx")),
        provenance=provenance(dict(model=mp.model_dump(), steps=steps, size=size, tile=tile)))))


if __name__ == "__main__":
    main()
