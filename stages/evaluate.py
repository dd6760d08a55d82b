"""Stage evaluate: PSNR/SSIM on the held-out split per task, and the plots."""
import json
from pathlib import Path

import click
import pandas as pd

from tripled.distributed import pick_device
from tripled.evaluate import complexity_histogram, evaluate, summarise
from tripled.io import read_index
from tripled.params import DataParams, EvalParams, load_section
from tripled.restore import load_restorer


@click.command()
@click.option("--index", "index_path", default="data/index.parquet", show_default=True, type=click.Path(path_type=Path))
@click.option("--scores", "scores_path", default="data/scores.parquet", show_default=True, type=click.Path(path_type=Path))
@click.option("--subset", "subset_path", default="data/subset.parquet", show_default=True, type=click.Path(path_type=Path))
@click.option("--model", "model_path", default="models/restorer.pt", show_default=True, type=click.Path(path_type=Path))
@click.option("--metrics", "metrics_dir", default="metrics", show_default=True, type=click.Path(path_type=Path))
@click.option("--plots", "plots_dir", default="plots", show_default=True, type=click.Path(path_type=Path))
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="params file (sections 'evaluate', 'data').")
def main(index_path, scores_path, subset_path, model_path, metrics_dir, plots_dir, params_path) -> None:
    """Score the restorer and the degraded input against the clean images of the test split."""
    ep = load_section(EvalParams, "evaluate", params_path)
    model = load_restorer(model_path)
    index = read_index(index_path, load_section(DataParams, "data", params_path).roots())
    per_sample = evaluate(model.eval(), index[index["split"] == "test"], ep.tile, ep.overlap, pick_device(ep.device))
    result = summarise(per_sample)
    metrics_dir.mkdir(parents=True, exist_ok=True)
    (metrics_dir / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
    plots_dir.mkdir(parents=True, exist_ok=True)
    bars = [dict(bar=f"{t} {side}", psnr_db=m[key]) for t, m in result["tasks"].items()
            for side, key in (("input", "psnr_input"), ("restored", "psnr"))]
    pd.DataFrame(bars).to_csv(plots_dir / "psnr_per_task.csv", index=False)
    subset_ids = pd.read_parquet(subset_path)["id"]
    complexity_histogram(pd.read_parquet(scores_path), subset_ids).to_csv(plots_dir / "complexity.csv", index=False)
    table = pd.DataFrame(result["tasks"]).T[["psnr_input", "psnr", "ssim_input", "ssim"]]
    click.echo(f"evaluate: {result['samples']} test samples\n{table.to_string()}\n"
               f"overall PSNR {result['overall']['psnr_input']:.2f} -> {result['overall']['psnr']:.2f} dB")


if __name__ == "__main__":
    main()
