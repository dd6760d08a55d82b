"""Stage select: the subset (id, curriculum stage, weight) into data/subset.parquet.

(Not named select.py: a script folder on sys.path would shadow the standard library's `select`.)
"""
from pathlib import Path

import click
import pandas as pd

from tripled.data.index import load_index
from tripled.features.store import read_features
from tripled.publish import atomic
from tripled.restorers import read_restorer, restorer_section
from tripled.selection.flat import tile_contrast
from tripled.selection.methods import FEATURE_METHODS, SelectParams, select
from tripled.stage import StageCommand, for_restorer, index_option, params_option, path_option, restorer_option


@click.command(cls=StageCommand)
@params_option("'select', 'restorers', 'data'")
@index_option("the sample index (read with select.min_contrast: the clean tiles' contrast).")
@path_option("--scores", "scores_path", "data/scores.parquet")
@path_option("--features", "features_path", "data/features.zarr",
             "read only by methods on features (kcenter, herding).")
@path_option("--warmup", "warmup_path", "data/warmup.parquet",
             "per-sample loss of the warmup stage (method loss, task_budget need).")
@path_option("--out", "out", "data/subsets/{restorer}.parquet")
@restorer_option()
def main(params_path: str, index_path: Path, scores_path: Path, features_path: Path, warmup_path: Path, out: Path,
         restorer: str) -> None:
    """Select select.ratio of the training samples of the restorer's tasks with select.method and split
    them into two stages."""
    p = restorer_section(SelectParams, "select", restorer, params_path)
    scores = pd.read_parquet(scores_path).merge(pd.read_parquet(warmup_path), on="id", how="left",
                                                validate="one_to_one")
    mine = read_restorer(restorer, params_path).rows(scores, restorer)
    emb = read_features(features_path)[0][scores.index.isin(mine.index)] if p.method in FEATURE_METHODS else None
    scores = mine.reset_index(drop=True)
    if p.min_contrast > 0:
        index = load_index(index_path, params_path).set_index("id")
        train = scores["split"] == "train"
        scores.loc[train, "contrast"] = tile_contrast(index.loc[scores.loc[train, "id"]].reset_index())
    subset = select(scores, p, emb)
    with atomic(for_restorer(out, restorer)) as tmp:
        subset.to_parquet(tmp, index=False)
    per_task = subset.merge(scores[["id", "task"]], on="id").groupby(["task", "stage"]).size().unstack(fill_value=0)
    click.echo(f"select ({p.method}): {len(subset)} of {int((scores['split'] == 'train').sum())} training samples\n"
               f"{per_task.to_string()}")


if __name__ == "__main__":
    main()
