"""Stage score: complexity, uncertainty and clusters for every sample into data/scores.parquet."""
from pathlib import Path

import click

from tripled.data.index import load_index
from tripled.features.store import read_features
from tripled.params import load_section
from tripled.publish import atomic
from tripled.selection.scoring import ScoreParams, score
from tripled.stage import StageCommand, index_option, params_option, path_option


@click.command(cls=StageCommand)
@params_option("'score', 'data'")
@index_option()
@path_option("--features", "features_path", "data/features.zarr")
@path_option("--out", "out", "data/scores.parquet")
def main(params_path: str, index_path: Path, features_path: Path, out: Path) -> None:
    """Fit an ensemble of heads to the complexity label; uncertainty = their disagreement; k-means clusters."""
    p = load_section(ScoreParams, "score", params_path)
    emb, labels, _ = read_features(features_path)
    scores = score(load_index(index_path, params_path), emb, labels, p)
    with atomic(out) as tmp:
        scores.to_parquet(tmp, index=False)
    lab = scores.dropna(subset=["label"])
    click.echo(f"score: {len(scores)} samples, {scores['cluster'].nunique()} clusters, "
               f"head fit r={lab['label'].corr(lab['complexity']):.3f} on labelled rows")


if __name__ == "__main__":
    main()
