"""The GPU bench (issue 18): one run on one GPU machine, one JSON.

Sections: `extract`, the extract stage on 4K JPEGs with CPU decoding and with nvJPEG against the CPU
decode ceiling (bench/extract.py's functions); `train`, bench/train.py's measurement with the 4K profile
(params-uhd.yaml): patches/s, data-wait share, peak memory, and from it the projected time of the
profile's full training against the paper's "under 8 hours on one consumer GPU"; `ddp`, a 2-process
DDP run of the same measurement under torchrun (skipped with fewer than 2 GPUs); `quality`, the demo at
2 % as issue 17 asks for it: tripled, random_task and full over 5 seeds and full-long over 3, the stage
scripts run in dvc.yaml's order without dvc, one restorer per (method, seed), several side by side,
summarised as bench/quality.py does. Needs a CUDA device; --dry-run runs every section on the CPU at a
tiny size (CI).

    python bench/gpu.py --out /tmp/gpu.json     # on a GPU machine: docs/gpu.md
    python bench/gpu.py --dry-run               # anywhere
"""
from __future__ import annotations

import importlib.util
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager, redirect_stdout
from dataclasses import asdict, dataclass, field
from pathlib import Path

import click
import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: bench.* beside it

from bench.common import code_version, provenance  # noqa: E402
from bench.extract import SIZE_4K, decode_rate, extract_rate, fixed_backbone, jpeg_index, make_jpeg  # noqa: E402
from bench.quality import _nested, markdown, run_params, summarise  # noqa: E402
from bench.train import measure  # noqa: E402
from tripled.device import available_cores  # noqa: E402
from tripled.features.decode import DecodePool, chunks, default_workers, index_rows, jpeg_bytes, thumb_batch  # noqa: E402
from tripled.features.extract import _gpu_thumbs, run_extract  # noqa: E402
from tripled.features.params import FeatureParams  # noqa: E402
from tripled.params import load_section, read_params  # noqa: E402
from tripled.training.params import TrainParams  # noqa: E402

UHD = str(ROOT / "params-uhd.yaml")
SECTIONS = ("extract", "train", "ddp", "quality")
PAPER_HOURS = 8.0  # the paper: full training "under 8 hours on one consumer GPU"
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
QUALITY_METHODS = ("tripled", "random_task", "full", "full-long")  # issue 17's demo table at 2 %
LONG_SEEDS = 3  # full-long's seeds (the others: --seeds)
TINY_NAFNET = dict(width=8, enc_blk_nums=[1, 1], dec_blk_nums=[1, 1], middle_blk_num=1)


@dataclass(frozen=True)
class Sizes:
    jpegs: int  # generated JPEGs of jpeg_size (width, height)
    jpeg_size: tuple[int, int]
    repeats: int  # best of, for each extraction rate
    features: dict  # overrides of params-uhd.yaml's features
    train: dict  # bench.train.measure's arguments
    ddp: dict
    seeds: int
    jobs: int  # quality runs side by side, each in its own process
    quality: dict = field(default_factory=dict)  # params.yaml overrides, {section: {key: value}}
    methods: tuple[str, ...] = QUALITY_METHODS
    long_factor: int = 5  # full-long trains this many times train.steps (in its steps_per)


GPU = Sizes(jpegs=192, jpeg_size=SIZE_4K, repeats=2, features={},
            train=dict(steps=50, warmup=10, images=4),
            ddp=dict(steps=20, warmup=5, images=2, compile_model=False),
            seeds=5, jobs=6, quality={"train": {"eval_every": 0}, "evaluate": {"device": "cuda", "precision": "fp32"}})
TINY_TRAIN = dict(arch="nafnet", kwargs=TINY_NAFNET, crop=32, batch=4, workers=0, device_choice="cpu",
                  compile_model=False, steps=3, warmup=1, images=2, size="96x128")
DRY = Sizes(jpegs=2, jpeg_size=(320, 240), repeats=1,
            features=dict(model_kwargs=dict(depth=1, embed_dim=48, num_heads=2), thumb_size=32, batch_size=8,
                          workers=2),
            train=TINY_TRAIN, ddp=TINY_TRAIN, seeds=2, jobs=2, long_factor=2,
            quality={"data": {"degradations": [{"type": "noise", "sigma": 25}, {"type": "rain"}], "tile": 192,
                              "test_fraction": 0.15},
                     "features": {"model_kwargs": {"depth": 1, "embed_dim": 48, "num_heads": 2}, "thumb_size": 32,
                                  "label_samples": 16, "scratch_steps": 2, "workers": 2},
                     "score": {"clusters": 4, "heads": 2},
                     "refine": {"steps": 2},
                     "model": {"kwargs": TINY_NAFNET},
                     "train": {"steps": 10, "steps_per": "run", "batch_size": 8, "log_every": 5, "checkpoint_every": 10,
                               "eval_every": 0},
                     "evaluate": {"unseen": []}})


def nvjpeg_rate(pool: DecodePool, index, size: int, device: torch.device) -> float:
    """img/s of the extract stage's GPU decode: file bytes read by the workers, decoded and resized by
    torchvision on `device` (nvJPEG on CUDA)."""
    rows = index_rows(index, "gt")
    t = time.perf_counter()
    for part in pool.imap(jpeg_bytes, chunks(rows.specs(range(len(index)))), size):
        _gpu_thumbs(part, size, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(index) / (time.perf_counter() - t)


def extraction(s: Sizes, device: torch.device, work: Path) -> dict:
    """CPU decode and nvJPEG, alone and inside the extract stage, against the CPU decode ceiling."""
    base = load_section(FeatureParams, "features", UHD, overrides=s.features)
    (work / "img").mkdir()
    with DecodePool(0) as pool:
        files = [Path(f) for f in pool.imap(make_jpeg, range(s.jpegs), str(work / "img"), s.jpeg_size)]
    index = jpeg_index(files)
    p = fixed_backbone(base, work)
    run_extract(index, p, work / "warm.zarr", work / "warm_vit", work / "labels_cache")  # labels cached
    runs: dict[str, list[float]] = dict(ceiling=[], nvjpeg_decode=[], extract_cpu_decode=[], extract_nvjpeg=[])
    with DecodePool(p.workers) as pool:
        for r in range(s.repeats):
            runs["ceiling"].append(decode_rate(pool, thumb_batch, index, p.thumb_size))
            runs["nvjpeg_decode"].append(nvjpeg_rate(pool, index, p.thumb_size, device))
            for name, gpu_decode in (("extract_cpu_decode", False), ("extract_nvjpeg", True)):
                q = p.model_copy(update=dict(gpu_decode=gpu_decode))
                runs[name].append(extract_rate(index, q, work, f"{name}{r}"))
    best = {k: max(v) for k, v in runs.items()}
    out = dict(images=len(index), image_size=f"{s.jpeg_size[0]}x{s.jpeg_size[1]}",
               mean_jpeg_mb=round(float(np.mean([f.stat().st_size for f in files])) / 2**20, 2),
               backbone=p.backbone, thumb_size=p.thumb_size, batch_size=p.batch_size,
               workers=default_workers(p.workers), device=device.type, nvjpeg=device.type == "cuda")
    for name, rate in best.items():
        out[f"{name}_img_s"] = round(rate, 2)
        if name != "ceiling":
            out[f"{name}_to_ceiling"] = round(rate / best["ceiling"], 3)
    if device.type != "cuda":
        out["note"] = "no CUDA: torchvision decodes on the CPU in place of nvJPEG, and the stage decodes on the CPU"
    out["runs"] = {k: [round(x, 2) for x in v] for k, v in runs.items()}
    return out


def projection(train: dict, dry_run: bool) -> dict:
    """params-uhd.yaml's train.steps at the measured step time, against the paper's 8 hours."""
    steps = load_section(TrainParams, "train", UHD).steps
    hours = steps * float(train["step_ms"]) / 3.6e6
    out = dict(steps=steps, step_ms=train["step_ms"], hours=round(hours, 3), paper_hours=PAPER_HOURS,
               within_paper_claim=hours < PAPER_HOURS, step_ms_needed=round(PAPER_HOURS * 3.6e6 / steps, 1),
               gpu=train["device"],
               note="training loop only (synthetic 4K set from disk; no checkpoints, held-out PSNR or evaluation); "
                    "the paper's claim is for a consumer GPU")
    if dry_run:
        out["note"] = "dry run: the step time of a tiny model on the CPU, not of the 4K profile"
    return out


def train_options(kw: dict) -> list[str]:
    """bench.train.measure's arguments as bench/train.py's options."""
    out = []
    for key, value in kw.items():
        if key == "compile_model":
            out.append("--compile" if value else "--no-compile")
        else:
            name = "device" if key == "device_choice" else key
            out += [f"--{name}", json.dumps(value) if key == "kwargs" else str(value)]
    return out


def ddp(s: Sizes, dry_run: bool) -> dict:
    """bench/train.py in 2 processes under torchrun (NCCL on 2 GPUs; gloo on the CPU in a dry run):
    patches/s of the whole batch, which the ranks share."""
    gpus = torch.cuda.device_count()
    if not dry_run and gpus < 2:
        return dict(status=f"skipped: {gpus} GPU")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "bench/train.py"), "--params", UHD, *train_options(s.ddp)]
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))  # carried wheels stay on it
    env = dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    run = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if run.returncode:
        raise click.ClickException(f"DDP run failed:\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}")
    return dict(status="ran", backend="gloo (CPU)" if dry_run else "nccl", **json.loads(run.stdout.splitlines()[-1]))


@contextmanager
def inside(folder: Path) -> Iterator[None]:
    """The stage scripts read and write paths relative to the project root: work in `folder`."""
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def run_stage(name: str, *args: str) -> float:
    """stages/<name>.py's command in this process (its output to stderr); seconds it took."""
    spec = importlib.util.spec_from_file_location(f"stage_{name}", ROOT / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    t = time.perf_counter()
    with redirect_stdout(sys.stderr):
        module.main.main(list(args), prog_name=name, standalone_mode=False)
    return time.perf_counter() - t


def restorer_plan(methods: list[str], seeds: int, steps: int, long_factor: int) -> dict[str, tuple[str, int, dict]]:
    """Restorer name -> (method, seed, its params entry) with bench/quality.py's params and seeds; full-long
    (LONG_SEEDS seeds, the longest runs) first, then seed-major, so a cut-short bench still pairs methods."""
    plan = {}
    for method in sorted(methods, key=lambda m: m != "full-long"):
        for seed in range(min(seeds, LONG_SEEDS) if method == "full-long" else seeds):
            entry = {"tasks": "all", **_nested(run_params(method, seed, steps, long_factor))}
            plan[f"{method}_s{seed}"] = (method, seed, entry)
    long = {k: v for k, v in plan.items() if v[0] == "full-long"}
    rest = sorted((k for k in plan if k not in long), key=lambda k: (plan[k][1], methods.index(plan[k][0])))
    return {**long, **{k: plan[k] for k in rest}}


@contextmanager
def thread_env(threads: int) -> Iterator[None]:
    """THREAD_VARS set to `threads` while the pool's processes start and run; restored after."""
    saved = {k: os.environ.get(k) for k in THREAD_VARS}
    os.environ.update({k: str(threads) for k in THREAD_VARS})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def restore(project: str, name: str) -> dict:
    """select, refine, train and evaluate of restorer `name` in `project` (in a pool process): its metrics."""
    with inside(Path(project)):
        took = {stage: round(run_stage(stage, "--restorer", name), 2)
                for stage in ("select_subset", "refine", "train", "evaluate")}
        return dict(eval=json.loads(Path(f"metrics/{name}/eval.json").read_text()),
                    train=json.loads(Path(f"metrics/{name}/train.json").read_text()), stage_seconds=took)


def quality(s: Sizes, work: Path, code: dict, report: Path | None, save: Callable[[dict], None]) -> dict:
    """The demo through the stage scripts, without dvc: the shared stages once in this process, then one
    restorer per (method, seed), s.jobs at a time in processes of their own with the cores split between
    them; the runs summarised as bench/quality.py does (paired against random_task, gain retained against
    full and full-long), after each run."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section_name, values in s.quality.items():
        params[section_name] = {**params[section_name], **values}
    plan = restorer_plan(list(s.methods), s.seeds, params["train"]["steps"], s.long_factor)
    params["restorers"] = {name: entry for name, (_, _, entry) in plan.items()}
    project = work / "demo"
    project.mkdir()
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    seconds: dict[str, float] = {}
    with inside(project):
        for stage in ("prepare", "extract", "score", "warmup"):
            seconds[stage] = round(run_stage(stage), 2)
    threads = max(1, available_cores() // s.jobs)
    out = dict(ratio=params["select"]["ratio"], steps=params["train"]["steps"],
               steps_per=params["train"].get("steps_per", "run"), long_factor=s.long_factor,
               methods=list(s.methods), jobs=s.jobs, threads_per_run=threads, train_device=params["train"]["device"],
               evaluate_device=params["evaluate"]["device"], shared_stage_seconds=seconds, overrides=s.quality,
               runs=[], errors=[],
               how="stage scripts in dvc.yaml's order without dvc; restorer <method>_s<seed> has bench/quality.py's "
                   "params and seeds for that method and seed")
    command = "python bench/gpu.py " + " ".join(sys.argv[1:])
    with thread_env(threads), ProcessPoolExecutor(s.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        started = time.perf_counter()
        futures = {pool.submit(restore, str(project), name): name for name in plan}
        for future in as_completed(futures):
            method, seed, entry = plan[futures[future]]
            try:
                r = future.result()
            except Exception as e:  # the other runs go on; the section fails at the end
                out["errors"].append(dict(run=futures[future], error=f"{type(e).__name__}: {e}"))
                save(out)
                continue
            run = {**params, **{k: {**params[k], **v} for k, v in entry.items() if isinstance(v, dict)}}
            out["runs"].append(dict(method=method, seed=seed, eval=r["eval"], train_seconds=r["train"]["seconds"],
                                    samples=r["train"]["samples"], stage_seconds=r["stage_seconds"],
                                    done_after_s=round(time.perf_counter() - started, 1), curve={},
                                    provenance=dict(provenance(run, code), threads=threads)))
            click.echo(f"{method} seed {seed}: PSNR {r['eval']['overall']['psnr']:.3f} dB, "
                       f"train {r['train']['seconds']} s", err=True)
            out["summary"] = summarise(out["runs"])
            if report is not None:
                report.mkdir(parents=True, exist_ok=True)
                done = [m for m in s.methods if m in out["summary"]]
                (report / "quality.md").write_text(markdown(out["summary"], done, command))
                (report / "quality.json").write_text(json.dumps(out["summary"], indent=1) + "\n")
                (report / "runs.json").write_text(json.dumps(out["runs"], indent=1) + "\n")
            save(out)
    if out["errors"]:
        raise RuntimeError(f"{len(out['errors'])} of {len(plan)} runs failed: {out['errors']}")
    return out


def section(name: str, s: Sizes, device: torch.device, dry_run: bool, work: Path, code: dict, report: Path | None,
            save: Callable[[dict], None]) -> dict:
    """One section's entries of the result."""
    if name == "extract":
        return dict(extract=extraction(s, device, work))
    if name == "train":
        train = measure(UHD, **s.train)
        return dict(train=train, projection=projection(train, dry_run))
    if name == "ddp":
        return dict(ddp=ddp(s, dry_run))
    return dict(quality=quality(s, work, code, report, save))


@click.command()
@click.option("--dry-run", is_flag=True, help="every section on the CPU at a tiny size (no GPU needed).")
@click.option("--out", type=click.Path(path_type=Path), help="also write the JSON here (after each section).")
@click.option("--sections", default=",".join(SECTIONS), show_default=True, help="comma-separated subset.")
@click.option("--seeds", type=int, help="quality seeds per method (default: 5; dry run 2); full-long: at most 3.")
@click.option("--methods", help=f"quality methods, comma-separated (default: {','.join(QUALITY_METHODS)}).")
@click.option("--jobs", type=int, help="quality runs side by side (default: 6; dry run 2).")
@click.option("--quality-dir", type=click.Path(path_type=Path),
              help="also write the quality section as bench/quality.py does: quality.md, quality.json, runs.json.")
@click.option("--quality-steps", type=int, help="train.steps in all of the quality runs (default: params.yaml's).")
@click.option("--commit", help="the commit of this tree, recorded in place of what git says (a copy of the tree).")
def main(dry_run: bool, out: Path | None, sections: str, seeds: int | None, methods: str | None, jobs: int | None,
         quality_dir: Path | None, quality_steps: int | None, commit: str | None) -> None:
    """Extraction, training throughput and its projection, DDP and quality on one GPU machine; one JSON.
    On a GPU a failed section is recorded (error, traceback) and the others still run; the exit status is 1."""
    todo = [x.strip() for x in sections.split(",") if x.strip()]
    if unknown := sorted(set(todo) - set(SECTIONS)):
        raise click.BadParameter(f"unknown {unknown}; known: {', '.join(SECTIONS)}", param_hint="--sections")
    if dry_run:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # every section on the CPU, even on a GPU machine
        device_name = "cpu (dry run: no GPU used, tiny sizes; the figures check the code, they measure no GPU)"
    elif not torch.cuda.is_available():
        raise click.ClickException("no CUDA device: bench/gpu.py measures a GPU. Run it on a GPU machine "
                                   "(docs/gpu.md), or with --dry-run to check it on the CPU.")
    else:
        device_name = f"{torch.cuda.get_device_name(0)} (x{torch.cuda.device_count()})"
    s = DRY if dry_run else GPU
    steps = {"steps": quality_steps, "steps_per": "run"} if quality_steps else {}
    quality_overrides = {**s.quality, "train": {**s.quality.get("train", {}), **steps}}
    names = tuple(m.strip() for m in methods.split(",") if m.strip()) if methods else s.methods
    for m in names:
        run_params(m, 0)  # an unknown method fails before any work
    if jobs is not None and jobs < 1:
        raise click.BadParameter("need at least one job", param_hint="--jobs")
    s = Sizes(**{**asdict(s), "seeds": seeds or s.seeds, "jobs": jobs or s.jobs, "methods": names,
                 "quality": quality_overrides})
    device = torch.device("cpu" if dry_run else "cuda")
    code = code_version()
    if commit:  # the device machine's copy of the tree may carry a stale .git; code_sha256 names the code
        code.update(commit=commit, dirty=None)
    params = dict(uhd=read_params(UHD), demo=read_params(ROOT / "params.yaml"), sizes=asdict(s))
    result: dict = dict(bench="gpu", dry_run=dry_run, device=device_name, sections=todo, complete=False,
                        failed=[], seconds={}, provenance=provenance(params, code))
    began = time.perf_counter()

    def save() -> None:
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(result, indent=1) + "\n")

    with tempfile.TemporaryDirectory(prefix="bench_gpu_") as tmp:
        for name in todo:
            t = time.perf_counter()
            work = Path(tmp) / name
            work.mkdir()
            click.echo(f"gpu bench: {name}", err=True)
            try:
                result.update(section(name, s, device, dry_run, work, code, quality_dir,
                                      lambda q: (result.update(quality=q), save())))
            except Exception as e:
                if dry_run:
                    raise
                result[name] = dict(result.get(name) or {}, error=f"{type(e).__name__}: {e}",  # finished runs stay
                                    traceback=traceback.format_exc()[-4000:])
                result["failed"].append(name)
            result["seconds"][name] = round(time.perf_counter() - t, 2)
            save()
    result.update(complete=True, wall_s=round(time.perf_counter() - began, 2))
    save()
    print(json.dumps(result))
    if result["failed"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
