"""Stage extract: ViT features of thumbnails and full-resolution complexity labels into data/features.zarr."""
from pathlib import Path

import click
import numpy as np
import pandas as pd

from tripled.features import (compute_labels, create_backbone, embed_index, label_sample, open_store,
                              train_scratch)
from tripled.params import LABELS, FeatureParams, load_section


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="params file (section 'features').")
@click.option("--index", "index_path", default="data/index.parquet", show_default=True, type=click.Path(path_type=Path))
@click.option("--out", default="data/features.zarr", show_default=True, type=click.Path(path_type=Path))
@click.option("--backbone-out", default="models/vit", show_default=True, type=click.Path(path_type=Path),
              help="where the backbone used is saved.")
def main(params_path: str, index_path: Path, out: Path, backbone_out: Path) -> None:
    """Embed every sample's 128x128 thumbnail with a timm ViT; label a sample at full resolution."""
    p = load_section(FeatureParams, "features", params_path)
    index = pd.read_parquet(index_path)
    rows = label_sample(index, p.label_samples, p.seed)
    labels, thumbs = compute_labels(index, rows, p)
    backbone = create_backbone(p)
    if p.weights == "scratch":
        losses = train_scratch(backbone, thumbs, labels, p)
        if losses:
            click.echo(f"extract: scratch ViT loss {np.mean(losses[:10]):.3f} -> {np.mean(losses[-10:]):.3f}")
    backbone.save(backbone_out, p.weights)
    group = open_store(out, len(index), backbone.model.num_features,
                       dict(backbone=p.backbone, weights=p.weights, view=p.view, labels=list(LABELS),
                            params=p.model_dump(), rows=len(index)))
    all_labels = np.full((len(index), len(LABELS)), np.nan, np.float32)
    all_labels[rows] = labels
    group["labels"][:] = all_labels
    embed_index(backbone, index, group, p)
    click.echo(f"extract: {len(index)} embeddings of dim {backbone.model.num_features}, {len(rows)} labelled")


if __name__ == "__main__":
    main()
