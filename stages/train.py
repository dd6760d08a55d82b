"""Stage train: a restorer trained on the distilled set with the two-stage curriculum.

Several GPUs (or CPU processes): torchrun --nproc_per_node N stages/train.py; rank 0 writes."""
import hashlib
import json
from pathlib import Path

import click
import torch
from dvclive import Live

from tripled.distilled import DistilledSet
from tripled.distributed import launched, pick_device
from tripled.io import file_hash, publish, staging_path
from tripled.params import ModelParams, TrainParams, load_section
from tripled.train import train


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
              help="train.json, and the training curves in dvclive/ (plots/metrics/*.tsv).")
def main(params_path: str, data_path: Path, out: Path, metrics_dir: Path) -> None:
    """Train model.arch on the distilled set; checkpoints every train.checkpoint_every steps and resumes.

    With DistributedDataParallel: torchrun --nproc_per_node N stages/train.py [options]."""
    mp = load_section(ModelParams, "model", params_path)
    p = load_section(TrainParams, "train", params_path)
    ds = DistilledSet(data_path, memory_limit=p.in_memory_mb << 20)
    fingerprint = hashlib.sha256(json.dumps([mp.model_dump(), p.model_dump(), file_hash(data_path / "manifest.parquet"),
                                             ds.attrs], sort_keys=True).encode()).hexdigest()
    (out / "restorer.pt").unlink(missing_ok=True)  # while this run trains, no older result reads as its result
    with launched(cuda=pick_device(p.device).type == "cuda") as world:
        model, curve = train(ds, mp, p, out / "checkpoints" / "last.pt", fingerprint)
    if not world.main:
        return
    staged = staging_path(out / "restorer.pt")
    torch.save(model.state_dict(), staged)
    publish(staged, out / "restorer.pt")
    (out / "restorer.json").write_text(json.dumps(dict(arch=mp.arch, kwargs=mp.kwargs), indent=2) + "\n")
    metrics_dir.mkdir(parents=True, exist_ok=True)
    log_curve(curve, metrics_dir / "dvclive")
    summary = dict(steps=p.steps, samples=len(ds), final_loss=round(curve[-1]["loss"], 6))
    (metrics_dir / "train.json").write_text(json.dumps(summary, indent=2) + "\n")
    click.echo(f"train: {p.steps} steps on {len(ds)} pairs, loss {curve[0]['loss']:.4f} -> {curve[-1]['loss']:.4f}")


if __name__ == "__main__":
    main()
