"""Stage refine: match the subset's feature distribution to the full set's; write the distilled set."""

import click
import pandas as pd

from tripled.data.distilled import DistilledWriter
from tripled.data.index import load_index, read_sample, train_mask
from tripled.device import use_available_cores
from tripled.errors import TripledError
from tripled.features.backbone import load_backbone
from tripled.features.store import read_features
from tripled.hashing import file_hash
from tripled.publish import atomic, write_json
from tripled.restorers import read_restorer, restorer_section
from tripled.selection.card import build_card, write_card
from tripled.selection.methods import SelectParams
from tripled.selection.projection import projection_table
from tripled.selection.refine import RefineParams, refine
from tripled.stage import StageCommand, for_restorer, index_option, params_option, path_option, restorer_option


@click.command(cls=StageCommand)
@params_option("'refine', 'select', 'restorers', 'data'")
@index_option()
@path_option("--subset", "subset_path", "data/subsets/{restorer}.parquet")
@path_option("--features", "features_path", "data/features.zarr")
@path_option("--backbone", "backbone_path", "models/vit")
@path_option("--out", "out", "data/distilled/{restorer}")
@path_option("--metrics", "metrics_path", "metrics/{restorer}/refine.json")
@path_option("--plot", "plot_path", "plots/{restorer}/features_2d.csv",
             "2-D projection of the features: full set, selected, refined.")
@restorer_option()
def main(params_path, index_path, subset_path, features_path, backbone_path, out, metrics_path, plot_path,
         restorer) -> None:
    """Fine-tune the selected pairs with a lightweight CNN (or copy them when refine.enabled is false)."""
    use_available_cores()
    subset_path, out, metrics_path, plot_path = (for_restorer(x, restorer)
                                                 for x in (subset_path, out, metrics_path, plot_path))
    p = restorer_section(RefineParams, "refine", restorer, params_path)
    index = load_index(index_path, params_path)
    rows = pd.read_parquet(subset_path).merge(index, on="id", how="left", validate="one_to_one")
    if rows["task"].isna().any():
        raise TripledError("subset ids missing from the index; rerun select")
    pairs = [(read_sample(r, "gt"), read_sample(r, "lq")) for r in rows.itertuples()]
    emb, _, attrs = read_features(features_path)
    mine = index.index.isin(read_restorer(restorer, params_path).rows(index, restorer).index)
    full = emb[train_mask(index) & mine]  # the training set of this restorer's tasks
    steps = p.steps if p.enabled else 0
    refined, report, feats = refine(pairs, attrs["view"], load_backbone(backbone_path), full,
                                    p.model_copy(update=dict(steps=steps)))
    report["enabled"] = p.enabled
    hashes = dict(subset_hash=file_hash(subset_path), index_hash=file_hash(index_path))
    writer = DistilledWriter(out, dict(refine=p.model_dump(), report=report, **hashes))
    for r, (gt, lq) in zip(rows.itertuples(), refined):
        writer.add(dict(id=r.id, task=r.task, stage=int(r.stage), weight=float(r.weight)), gt, lq)
    selection = restorer_section(SelectParams, "select", restorer, params_path).model_dump()
    writer.close(lambda folder, manifest: write_card(folder, build_card(
        folder, manifest, index_hash=hashes["index_hash"], subset_hash=hashes["subset_hash"], train_samples=len(full),
        selection=selection, refine=p.model_dump(), report=report, features=attrs)))
    with atomic(plot_path) as tmp:
        projection_table(full, feats["selected"], feats["refined"], seed=p.seed).to_csv(tmp, index=False)
    write_json(metrics_path, report)
    click.echo(f"refine: {len(rows)} pairs, {p.distance} distance {report['before']:.4f} -> {report['after']:.4f}, "
               f"clean images {report['gt_psnr_vs_original']:.1f} dB from the originals")


if __name__ == "__main__":
    main()
