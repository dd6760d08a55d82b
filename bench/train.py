"""Training throughput: patches/s, the share of step time spent waiting for data, peak memory.

Builds a synthetic distilled set of UHD images (on disk, chunked like the real one), runs the real
training loop (tripled.training.loop) for warmup + steps steps and prints one JSON line. The model and
training params come from a params file; the options override them. Under torchrun each process trains
its share of every batch with DDP (as the train stage does) and rank 0 prints the JSON.

    python bench/train.py --params params-uhd.yaml --steps 50          # on a GPU machine
    python bench/train.py --arch nafnet --crop 64 --batch 4 --images 2  # a quick CPU check
    python -m torch.distributed.run --standalone --nproc_per_node 2 bench/train.py --params params-uhd.yaml
"""
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: bench.common beside it

from bench.common import provenance
from tripled.data.distilled import DistilledSet, DistilledWriter
from tripled.device import pick_device, use_bf16
from tripled.params import load_section
from tripled.training.archs import build_model
from tripled.training.distributed import current, launched
from tripled.training.loop import StepTimes, train
from tripled.training.params import ModelParams, TrainParams


def synthetic_set(folder: Path, images: int, height: int, width: int, seed: int = 0) -> DistilledSet:
    """Smooth colour gradients with texture (they compress like photographs, unlike pure noise), degraded by noise."""
    rng = np.random.default_rng(seed)
    writer = DistilledWriter(folder, dict(bench=True))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for i in range(images):
        f = rng.uniform(0.002, 0.02, 3)
        gt = np.stack([128 + 100 * np.sin(f[c] * (xx + 0.7 * yy) + c) for c in range(3)], -1)
        gt = np.clip(gt + rng.normal(0, 8, gt.shape), 0, 255).astype(np.uint8)
        lq = np.clip(gt + rng.normal(0, 25, gt.shape), 0, 255).astype(np.uint8)
        writer.add(dict(id=f"t{i % 2}/{i}", task=f"t{i % 2}", stage=1 + i % 2, weight=1.0), gt, lq)
    writer.close()
    return DistilledSet(folder, memory_limit=0)


def measure(params_path: str = "params.yaml", *, arch: str | None = None, kwargs: dict | None = None,
            crop: int | None = None, batch: int | None = None, workers: int | None = None,
            device_choice: str | None = None, compile_model: bool | None = None, precision: str | None = None,
            steps: int = 30, warmup: int = 5,
            images: int = 4, size: str = "2160x3840") -> dict:
    """The training loop timed on a synthetic chunked set read crop by crop from disk: patches/s, data-wait
    share, peak memory. `arch`/`kwargs` and the other options override the params file's model and train."""
    mp = load_section(ModelParams, "model", params_path)
    if arch is not None and arch != mp.arch:
        mp = ModelParams(arch=arch)
    if kwargs is not None:
        mp = ModelParams(arch=mp.arch, kwargs=kwargs)
    p = load_section(TrainParams, "train", params_path)
    overrides = dict(crop=crop, batch_size=batch, workers=workers, device=device_choice, compile=compile_model,
                     precision=precision)
    p = p.model_copy(update={k: v for k, v in overrides.items() if v is not None}
                     | dict(steps=warmup + steps, checkpoint_every=warmup + steps, log_every=warmup + steps))
    p = TrainParams(**p.model_dump())  # validate the overrides
    height, width = map(int, size.lower().split("x"))
    device = pick_device(p.device)
    times = StepTimes()
    with tempfile.TemporaryDirectory() as tmp:
        ds = synthetic_set(Path(tmp) / "distilled", images, height, width)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        began = time.perf_counter()
        train(ds, mp, p, Path(tmp) / "ck.pt", "bench", times=times)
        wall = time.perf_counter() - began
    data, total = np.array(times.data[warmup:]), np.array(times.total[warmup:])
    if device.type == "cuda":
        peak, peak_kind = torch.cuda.max_memory_allocated() / 2**20, "cuda_allocated"
    else:
        peak, peak_kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process_rss"
    return dict(
        device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        torch_threads=torch.get_num_threads(), arch=mp.arch, kwargs=mp.kwargs,
        params_m=round(sum(t.numel() for t in build_model(mp.arch, **mp.kwargs).parameters()) / 1e6, 3),
        image=f"{height}x{width}", source="disk (chunked zarr, crop reads)", crop=p.crop, batch=p.batch_size,
        workers=p.workers, prefetch=p.prefetch, channels_last=p.channels_last, compile=p.compile,
        bf16=use_bf16(p.precision, device), world_size=current().size, steps=steps, warmup=warmup,
        step_ms=round(1000 * total.mean(), 2), patches_per_s=round(p.batch_size * len(total) / total.sum(), 2),
        data_wait_fraction=round(float(data.sum() / total.sum()), 4),
        peak_mem_mb=round(peak, 1), peak_mem_kind=peak_kind, wall_s=round(wall, 2),
        provenance=provenance(dict(model=mp.model_dump(), train=p.model_dump(), images=images, size=size)))


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="sections 'model' and 'train'.")
@click.option("--arch", default=None, help="override model.arch (another arch gets its default kwargs).")
@click.option("--crop", type=int, default=None, help="override train.crop")
@click.option("--batch", type=int, default=None, help="override train.batch_size")
@click.option("--workers", type=int, default=None, help="override train.workers")
@click.option("--kwargs", "kwargs_json", default=None, help="override model.kwargs (JSON)")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None, help="override train.device")
@click.option("--compile/--no-compile", "compile_model", default=None, help="override train.compile")
@click.option("--steps", type=int, default=30, show_default=True, help="timed steps")
@click.option("--warmup", type=int, default=5, show_default=True, help="untimed first steps (worker start, compile)")
@click.option("--images", type=int, default=4, show_default=True, help="images in the synthetic set")
@click.option("--size", default="2160x3840", show_default=True, help="image height x width")
def main(params_path, arch, crop, batch, workers, kwargs_json, device, compile_model, steps, warmup, images,
         size) -> None:
    """Time the training loop on a synthetic chunked UHD set read crop by crop from disk."""
    cuda = pick_device(device or load_section(TrainParams, "train", params_path).device).type == "cuda"
    with launched(cuda) as world:
        result = measure(params_path, arch=arch, kwargs=json.loads(kwargs_json) if kwargs_json else None, crop=crop,
                         batch=batch, workers=workers, device_choice=device, compile_model=compile_model,
                         steps=steps, warmup=warmup, images=images, size=size)
    if world.main:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
