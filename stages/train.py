"""Stage train: a restorer trained on the distilled set with the two-stage curriculum.

Several GPUs (or CPU processes): torchrun --nproc_per_node N stages/train.py; rank 0 writes."""
import copy
import json
import time
from pathlib import Path

import click
import pandas as pd
import torch
from dvclive import Live

from tripled.distilled import DistilledSet
from tripled.distributed import launched, pick_device
from tripled.evaluate import evaluate, held_out, summarise
from tripled.io import publish, read_index, staging_path
from tripled.params import DataParams, ModelParams, TrainParams, load_section
from tripled.train import run_fingerprint, train


def log_curve(curve: list[dict], folder: Path) -> None:
    """The training curve as dvclive metrics (loss, learning rate, curriculum stage per logged step)."""
    # dvc.yaml declares the plots; dvclive must neither edit it nor save an experiment of its own.
    with Live(str(folder), dvcyaml=None, save_dvc_exp=False) as live:
        for row in curve:
            live.step = row["step"]
            for name in ("loss", "lr", "stage"):
                live.log_metric(name, row[name])


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="params file (sections 'model', 'train').")
@click.option("--data", "data_path", default="data/distilled", show_default=True, type=click.Path(path_type=Path))
@click.option("--out", default="models", show_default=True, type=click.Path(path_type=Path))
@click.option("--metrics", "metrics_dir", default="metrics", show_default=True, type=click.Path(path_type=Path),
              help="train.json, psnr_curve.csv, and the training curves in dvclive/ (plots/metrics/*.tsv).")
@click.option("--index", "index_path", default="data/index.parquet", show_default=True, type=click.Path(path_type=Path),
              help="held-out tiles for the PSNR-versus-step curve (train.eval_every > 0).")
def main(params_path: str, data_path: Path, out: Path, metrics_dir: Path, index_path: Path) -> None:
    """Train model.arch on the distilled set; checkpoints every train.checkpoint_every steps and resumes.

    With DistributedDataParallel: torchrun --nproc_per_node N stages/train.py [options]."""
    mp = load_section(ModelParams, "model", params_path)
    p = load_section(TrainParams, "train", params_path)
    ds = DistilledSet(data_path, memory_limit=p.in_memory_mb << 20)
    fingerprint = run_fingerprint(mp, p, data_path / "manifest.parquet", ds.attrs)
    validate, validating = None, [0.0]
    if p.eval_every:
        rows = held_out(read_index(index_path, load_section(DataParams, "data", params_path).roots()),
                        p.eval_samples, p.seed)

        def validate(model: torch.nn.Module) -> float:
            t = time.perf_counter()
            psnr = summarise(evaluate(copy.deepcopy(model).cpu(), rows, progress=False))["overall"]["psnr"]
            validating[0] += time.perf_counter() - t
            return psnr

    (out / "restorer.pt").unlink(missing_ok=True)  # while this run trains, no older result reads as its result
    started = time.perf_counter()
    with launched(cuda=pick_device(p.device).type == "cuda") as world:
        model, curve = train(ds, mp, p, out / "checkpoints" / "last.pt", fingerprint, validate=validate)
    if not world.main:
        return
    seconds = time.perf_counter() - started - validating[0]
    staged = staging_path(out / "restorer.pt")
    torch.save(model.state_dict(), staged)
    publish(staged, out / "restorer.pt")
    (out / "restorer.json").write_text(json.dumps(dict(arch=mp.arch, kwargs=mp.kwargs), indent=2) + "\n")
    metrics_dir.mkdir(parents=True, exist_ok=True)
    log_curve(curve, metrics_dir / "dvclive")
    frame = pd.DataFrame(curve)
    psnr_curve = frame.dropna(subset=["psnr"]) if "psnr" in frame else pd.DataFrame(columns=["step", "psnr"])
    psnr_curve[["step", "psnr"]].to_csv(metrics_dir / "psnr_curve.csv", index=False)
    # seconds: wall time of this run's training loop without the PSNR curve (a resumed run: its own part)
    summary = dict(steps=p.steps, samples=len(ds), final_loss=round(curve[-1]["loss"], 6), seconds=round(seconds, 2))
    (metrics_dir / "train.json").write_text(json.dumps(summary, indent=2) + "\n")
    click.echo(f"train: {p.steps} steps on {len(ds)} pairs, loss {curve[0]['loss']:.4f} -> {curve[-1]['loss']:.4f}")


if __name__ == "__main__":
    main()
