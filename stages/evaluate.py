"""Stage evaluate: PSNR/SSIM on the held-out split per task, and the plots."""

import click
import pandas as pd

from tripled.data.index import load_index
from tripled.device import autocast, pick_device, use_available_cores
from tripled.evaluation.evaluate import complexity_histogram, evaluate, summarise
from tripled.evaluation.params import EvalParams
from tripled.evaluation.restore import load_restorer
from tripled.evaluation.unseen import evaluate_unseen
from tripled.publish import atomic, write_json
from tripled.restorers import read_restorer, restorer_section
from tripled.stage import StageCommand, for_restorer, index_option, params_option, path_option, restorer_option


@click.command(cls=StageCommand)
@params_option("'evaluate', 'restorers', 'data'")
@index_option()
@path_option("--scores", "scores_path", "data/scores.parquet")
@path_option("--subset", "subset_path", "data/subsets/{restorer}.parquet")
@path_option("--model", "model_path", "models/{restorer}/restorer.pt")
@path_option("--metrics", "metrics_dir", "metrics/{restorer}")
@path_option("--plots", "plots_dir", "plots/{restorer}")
@restorer_option()
def main(params_path, index_path, scores_path, subset_path, model_path, metrics_dir, plots_dir, restorer) -> None:
    """Score the restorer and the degraded input against the clean images of its tasks' test split."""
    use_available_cores()
    subset_path, model_path, metrics_dir, plots_dir = (for_restorer(x, restorer)
                                                       for x in (subset_path, model_path, metrics_dir, plots_dir))
    ep = restorer_section(EvalParams, "evaluate", restorer, params_path)
    model = load_restorer(model_path)
    mine = read_restorer(restorer, params_path)
    index = mine.rows(load_index(index_path, params_path), restorer)
    device = pick_device(ep.device)
    with autocast(ep.precision, device):
        result = summarise(evaluate(model.eval(), index[index["split"] == "test"], ep.tile, ep.overlap, device))
        if ep.unseen:  # scored apart: never in training, so never in the trained tasks' means
            result["unseen"] = summarise(evaluate_unseen(model, index, ep.unseen, ep.seed, ep.tile, ep.overlap,
                                                         device))
    write_json(metrics_dir / "eval.json", result)
    groups = [("", result)] + ([(" (unseen)", result["unseen"])] if ep.unseen else [])
    bars = [dict(bar=f"{t}{kind} {side}", psnr_db=m[key]) for kind, block in groups for t, m in block["tasks"].items()
            for side, key in (("input", "psnr_input"), ("restored", "psnr"))]
    with atomic(plots_dir / "psnr_per_task.csv") as tmp:
        pd.DataFrame(bars).to_csv(tmp, index=False)
    subset_ids = pd.read_parquet(subset_path)["id"]
    with atomic(plots_dir / "complexity.csv") as tmp:
        complexity_histogram(mine.rows(pd.read_parquet(scores_path), restorer), subset_ids).to_csv(tmp, index=False)
    for kind, block in groups:
        table = pd.DataFrame(block["tasks"]).T[["psnr_input", "psnr", "ssim_input", "ssim"]]
        click.echo(f"evaluate{kind}: {block['samples']} test samples\n{table.to_string()}\n"
                   f"overall PSNR {block['overall']['psnr_input']:.2f} -> {block['overall']['psnr']:.2f} dB")


if __name__ == "__main__":
    main()
