"""Stage train: a restorer trained on the distilled set with the two-stage curriculum."""
import copy
import hashlib
import json
import time
from pathlib import Path

import click
import pandas as pd
import torch

from tripled.distilled import DistilledSet
from tripled.evaluate import evaluate, held_out, summarise
from tripled.io import file_hash
from tripled.params import ModelParams, TrainParams, load_section
from tripled.train import train

MEMORY_LIMIT = 4 << 30  # a distilled set up to this size trains from memory


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="params file (sections 'model', 'train').")
@click.option("--data", "data_path", default="data/distilled", show_default=True, type=click.Path(path_type=Path))
@click.option("--out", default="models", show_default=True, type=click.Path(path_type=Path))
@click.option("--metrics", "metrics_dir", default="metrics", show_default=True, type=click.Path(path_type=Path))
@click.option("--index", "index_path", default="data/index.parquet", show_default=True, type=click.Path(path_type=Path),
              help="held-out tiles for the PSNR-versus-step curve (train.eval_every > 0).")
def main(params_path: str, data_path: Path, out: Path, metrics_dir: Path, index_path: Path) -> None:
    """Train model.arch on the distilled set; checkpoints every train.checkpoint_every steps and resumes."""
    mp = load_section(ModelParams, "model", params_path)
    p = load_section(TrainParams, "train", params_path)
    ds = DistilledSet(data_path, memory_limit=MEMORY_LIMIT)
    fingerprint = hashlib.sha256(json.dumps([mp.model_dump(), p.model_dump(), file_hash(data_path / "manifest.parquet"),
                                             ds.attrs], sort_keys=True).encode()).hexdigest()
    validate, validating = None, [0.0]
    if p.eval_every:
        rows = held_out(pd.read_parquet(index_path), p.eval_samples, p.seed)

        def validate(model: torch.nn.Module) -> float:
            t = time.perf_counter()
            psnr = summarise(evaluate(copy.deepcopy(model).cpu(), rows, progress=False))["overall"]["psnr"]
            validating[0] += time.perf_counter() - t
            return psnr

    started = time.perf_counter()
    model, curve = train(ds, mp, p, out / "checkpoints" / "last.pt", fingerprint, validate)
    seconds = time.perf_counter() - started - validating[0]
    torch.save(model.state_dict(), out / "restorer.pt")
    (out / "restorer.json").write_text(json.dumps(dict(arch=mp.arch, kwargs=mp.kwargs), indent=2) + "\n")
    metrics_dir.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(curve)
    frame.drop(columns="psnr", errors="ignore").to_csv(metrics_dir / "train_curve.csv", index=False)
    psnr_curve = frame.dropna(subset=["psnr"]) if "psnr" in frame else pd.DataFrame(columns=["step", "psnr"])
    psnr_curve[["step", "psnr"]].to_csv(metrics_dir / "psnr_curve.csv", index=False)
    # seconds: wall time of this run's training loop without the PSNR curve (a resumed run: its own part)
    summary = dict(steps=p.steps, samples=len(ds), final_loss=round(curve[-1]["loss"], 6), seconds=round(seconds, 2))
    (metrics_dir / "train.json").write_text(json.dumps(summary, indent=2) + "\n")
    click.echo(f"train: {p.steps} steps on {len(ds)} pairs, loss {curve[0]['loss']:.4f} -> {curve[-1]['loss']:.4f}")


if __name__ == "__main__":
    main()
