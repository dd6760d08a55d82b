"""Stage refine: match the subset's feature distribution to the full set's; write the distilled set."""
import json
from pathlib import Path

import click
import pandas as pd

from tripled.distilled import DistilledWriter
from tripled.features import load_backbone, read_features
from tripled.io import file_hash, read_sample
from tripled.params import RefineParams, load_section
from tripled.refine import projection, refine

PROJECTION_ROWS = 2000  # points of the full set drawn in the projection plot


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="params file (section 'refine').")
@click.option("--index", "index_path", default="data/index.parquet", show_default=True, type=click.Path(path_type=Path))
@click.option("--subset", "subset_path", default="data/subset.parquet", show_default=True, type=click.Path(path_type=Path))
@click.option("--features", "features_path", default="data/features.zarr", show_default=True, type=click.Path(path_type=Path))
@click.option("--backbone", "backbone_path", default="models/vit", show_default=True, type=click.Path(path_type=Path))
@click.option("--out", default="data/distilled", show_default=True, type=click.Path(path_type=Path))
@click.option("--metrics", "metrics_path", default="metrics/refine.json", show_default=True, type=click.Path(path_type=Path))
@click.option("--plots", "plots_dir", default="plots/projection", show_default=True, type=click.Path(path_type=Path),
              help="2-D projection of the features: full.csv, selected.csv, refined.csv.")
def main(params_path, index_path, subset_path, features_path, backbone_path, out, metrics_path, plots_dir) -> None:
    """Fine-tune the selected pairs with a lightweight CNN (or copy them when refine.enabled is false)."""
    p = load_section(RefineParams, "refine", params_path)
    index = pd.read_parquet(index_path)
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
    writer.close()
    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    metrics_path.write_text(json.dumps(report, indent=2) + "\n")
    plots_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in projection(full, feats, PROJECTION_ROWS, p.seed).items():
        frame.to_csv(plots_dir / f"{name}.csv", index=False)
    click.echo(f"refine: {len(rows)} pairs, {p.distance} distance {report['before']:.4f} -> {report['after']:.4f}, "
               f"clean images {report['gt_psnr_vs_original']:.1f} dB from the originals")


if __name__ == "__main__":
    main()
