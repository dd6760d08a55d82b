"""Stage select: the subset (id, curriculum stage, weight) into data/subset.parquet.

(Not named select.py: a script folder on sys.path would shadow the standard library's `select`.)
"""
from pathlib import Path

import click
import pandas as pd

from tripled.features import read_features
from tripled.params import SelectParams, load_section
from tripled.selection import FEATURE_METHODS, select


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="params file (section 'select').")
@click.option("--scores", "scores_path", default="data/scores.parquet", show_default=True, type=click.Path(path_type=Path))
@click.option("--features", "features_path", default="data/features.zarr", show_default=True,
              type=click.Path(path_type=Path), help="read only by methods on features (kcenter, herding).")
@click.option("--out", default="data/subset.parquet", show_default=True, type=click.Path(path_type=Path))
def main(params_path: str, scores_path: Path, features_path: Path, out: Path) -> None:
    """Select select.ratio of the training samples with select.method and split them into two stages."""
    p = load_section(SelectParams, "select", params_path)
    scores = pd.read_parquet(scores_path)
    emb = read_features(features_path)[0] if p.method in FEATURE_METHODS else None
    subset = select(scores, p, emb)
    subset.to_parquet(out, index=False)
    per_task = subset.merge(scores[["id", "task"]], on="id").groupby(["task", "stage"]).size().unstack(fill_value=0)
    click.echo(f"select ({p.method}): {len(subset)} of {int((scores['split'] == 'train').sum())} training samples\n"
               f"{per_task.to_string()}")


if __name__ == "__main__":
    main()
