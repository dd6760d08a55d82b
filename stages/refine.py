"""Stage refine: match the subset's feature distribution to the full set's; write the distilled set."""
import json
from pathlib import Path

import click
import pandas as pd

from tripled.card import build_card, write_card
from tripled.distilled import DistilledWriter
from tripled.features import load_backbone, read_features
from tripled.io import file_hash, read_index, read_sample
from tripled.params import DataParams, RefineParams, SelectParams, load_section
from tripled.projection import projection_table
from tripled.refine import refine


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="params file (sections 'refine', 'data').")
@click.option("--index", "index_path", default="data/index.parquet", show_default=True, type=click.Path(path_type=Path))
@click.option("--subset", "subset_path", default="data/subset.parquet", show_default=True, type=click.Path(path_type=Path))
@click.option("--features", "features_path", default="data/features.zarr", show_default=True, type=click.Path(path_type=Path))
@click.option("--backbone", "backbone_path", default="models/vit", show_default=True, type=click.Path(path_type=Path))
@click.option("--out", default="data/distilled", show_default=True, type=click.Path(path_type=Path))
@click.option("--metrics", "metrics_path", default="metrics/refine.json", show_default=True, type=click.Path(path_type=Path))
@click.option("--plot", "plot_path", default="plots/features_2d.csv", show_default=True, type=click.Path(path_type=Path),
              help="2-D projection of the features: full set, selected, refined.")
def main(params_path, index_path, subset_path, features_path, backbone_path, out, metrics_path, plot_path) -> None:
    """Fine-tune the selected pairs with a lightweight CNN (or copy them when refine.enabled is false)."""
    p = load_section(RefineParams, "refine", params_path)
    index = read_index(index_path, load_section(DataParams, "data", params_path).roots())
    rows = pd.read_parquet(subset_path).merge(index, on="id", how="left", validate="one_to_one")
    if rows["task"].isna().any():
        raise click.ClickException("subset ids missing from the index; rerun select")
    pairs = [(read_sample(r, "gt"), read_sample(r, "lq")) for r in rows.itertuples()]
    emb, _, attrs = read_features(features_path)
    full = emb[(index["split"] == "train").to_numpy()]
    steps = p.steps if p.enabled else 0
    refined, report, feats = refine(pairs, attrs["view"], load_backbone(backbone_path), full, p.model_copy(update=dict(steps=steps)))
    report["enabled"] = p.enabled
    writer = DistilledWriter(out, dict(refine=p.model_dump(), report=report, subset_hash=file_hash(subset_path),
                                       index_hash=file_hash(index_path)))
    for r, (gt, lq) in zip(rows.itertuples(), refined):
        writer.add(dict(id=r.id, task=r.task, stage=int(r.stage), weight=float(r.weight)), gt, lq)
    manifest = writer.close()
    write_card(out, build_card(out, manifest, index_hash=file_hash(index_path), subset_hash=file_hash(subset_path),
                               train_samples=len(full), selection=load_section(SelectParams, "select", params_path).model_dump(),
                               refine=p.model_dump(), report=report, features=attrs))
    plot_path.parent.mkdir(parents=True, exist_ok=True)
    projection_table(full, feats["selected"], feats["refined"], seed=p.seed).to_csv(plot_path, index=False)
    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    metrics_path.write_text(json.dumps(report, indent=2) + "\n")
    click.echo(f"refine: {len(rows)} pairs, {p.distance} distance {report['before']:.4f} -> {report['after']:.4f}, "
               f"clean images {report['gt_psnr_vs_original']:.1f} dB from the originals")


if __name__ == "__main__":
    main()
