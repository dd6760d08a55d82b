"""How many source images each method's subset draws on, per task: the spread that decides a tiny set.

    python bench/coverage.py PROJECT [--ratio R] [--methods tripled,random_task,random_spread] [--seeds K]

PROJECT is a project (or a bench's DIR/project) whose score stage has run: this reads its params.yaml
and data/scores.parquet (plus data/warmup.parquet and data/features.zarr where a method needs them),
runs the select step of each method at seeds 0..K-1 (seed 0 only where the subset does not depend on
the seed) and prints JSON: per method and seed, per task, the picks and the distinct source images
among them, out of the task's source images. Selection only: nothing is trained.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: bench.common beside it

from bench.common import provenance  # noqa: E402
from bench.quality import STOCHASTIC_SELECTION  # noqa: E402
from tripled.features.store import read_features  # noqa: E402
from tripled.params import load_section, read_params  # noqa: E402
from tripled.selection.methods import FEATURE_METHODS, SelectParams, select  # noqa: E402


def sources_per_task(scores: pd.DataFrame, subset: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Per task of the training rows: picks, distinct sources among them, and sources there are."""
    train = scores[scores["split"] == "train"]
    picked = subset[["id"]].merge(train[["id", "task", "source"]], on="id", validate="one_to_one")
    out = {}
    for task, rows in train.groupby("task"):
        mine = picked[picked["task"] == task]
        out[str(task)] = dict(picks=len(mine), sources=int(mine["source"].nunique()),
                              available=int(rows["source"].nunique()))
    return out


def coverage(scores: pd.DataFrame, base: SelectParams, methods: list[str], seeds: int,
             emb=None) -> list[dict]:
    """One row per (method, seed): the select params `base` with that method and seed, and its spread."""
    rows = []
    for m in methods:
        for seed in range(seeds if m in STOCHASTIC_SELECTION else 1):
            p = SelectParams(**{**base.model_dump(), "method": m, "seed": seed})
            subset = select(scores, p, emb if m in FEATURE_METHODS else None)
            tasks = sources_per_task(scores, subset)
            rows.append(dict(method=m, seed=seed, tasks=tasks,
                             sources_fraction=round(sum(t["sources"] for t in tasks.values())
                                                    / sum(t["available"] for t in tasks.values()), 4)))
    return rows


@click.command()
@click.argument("project", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--ratio", type=float, default=None, help="select.ratio (default: the project's)")
@click.option("--methods", default="tripled,random_task,random_spread", show_default=True)
@click.option("--seeds", type=click.IntRange(min=1), default=5, show_default=True,
              help="seeds 0..K-1 of the methods whose subset depends on select.seed")
def main(project: Path, ratio: float | None, methods: str, seeds: int) -> None:
    params = read_params(project / "params.yaml")
    base = load_section(SelectParams, "select", project / "params.yaml",
                        overrides={"ratio": ratio} if ratio is not None else None)
    scores = pd.read_parquet(project / "data/scores.parquet")
    warmup = project / "data/warmup.parquet"
    if warmup.is_file():  # the loss baselines' per-sample loss
        scores = scores.merge(pd.read_parquet(warmup), on="id", how="left", validate="one_to_one")
    names = [m.strip() for m in methods.split(",") if m.strip()]
    emb = None
    if set(names) & set(FEATURE_METHODS):
        store = project / "data/features.zarr"
        if not store.exists():
            raise click.ClickException(f"{store} not found: {', '.join(FEATURE_METHODS)} need the feature store")
        emb = read_features(store)[0]
    rows = coverage(scores, base, names, seeds, emb)
    click.echo(json.dumps(dict(project=str(project), ratio=base.ratio, runs=rows,
                               provenance=provenance(params)), indent=1))


if __name__ == "__main__":
    main()
