"""Stage score: complexity, uncertainty and clusters for every sample into data/scores.parquet."""
from pathlib import Path

import click

from tripled.features import read_features
from tripled.io import read_index
from tripled.params import DataParams, ModelParams, ScoreParams, load_section
from tripled.scoring import score, warmup_loss


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="params file (sections 'score', 'model', 'data').")
@click.option("--index", "index_path", default="data/index.parquet", show_default=True, type=click.Path(path_type=Path))
@click.option("--features", "features_path", default="data/features.zarr", show_default=True, type=click.Path(path_type=Path))
@click.option("--out", default="data/scores.parquet", show_default=True, type=click.Path(path_type=Path))
def main(params_path: str, index_path: Path, features_path: Path, out: Path) -> None:
    """Fit an ensemble of heads to the complexity label; uncertainty = their disagreement; k-means clusters;
    the per-sample loss of a warm-up restorer (score.loss_steps > 0)."""
    p = load_section(ScoreParams, "score", params_path)
    emb, labels, _ = read_features(features_path)
    index = read_index(index_path, load_section(DataParams, "data", params_path).roots())
    scores = score(index, emb, labels, p)
    scores["loss"] = warmup_loss(index, load_section(ModelParams, "model", params_path), p)
    scores.to_parquet(out, index=False)
    lab = scores.dropna(subset=["label"])
    click.echo(f"score: {len(scores)} samples, {scores['cluster'].nunique()} clusters, "
               f"head fit r={lab['label'].corr(lab['complexity']):.3f} on labelled rows")


if __name__ == "__main__":
    main()
