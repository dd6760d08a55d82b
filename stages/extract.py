"""Stage extract: ViT features of thumbnails and full-resolution complexity labels into data/features.zarr."""
from pathlib import Path

import click
import numpy as np

from tripled.extraction import run_extract
from tripled.io import read_index
from tripled.params import DataParams, FeatureParams, load_section


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="params file (sections 'features', 'data').")
@click.option("--index", "index_path", default="data/index.parquet", show_default=True, type=click.Path(path_type=Path))
@click.option("--out", default="data/features.zarr", show_default=True, type=click.Path(path_type=Path))
@click.option("--backbone-out", default="models/vit", show_default=True, type=click.Path(path_type=Path),
              help="where the backbone used is saved.")
@click.option("--cache", "cache_dir", default="data/extract_cache", show_default=True, type=click.Path(path_type=Path),
              help="results by content (resume after a kill, embed only new images); safe to delete.")
def main(params_path: str, index_path: Path, out: Path, backbone_out: Path, cache_dir: Path) -> None:
    """Embed every sample's 128x128 thumbnail with a timm ViT; label a sample at full resolution."""
    p = load_section(FeatureParams, "features", params_path)
    index = read_index(index_path, load_section(DataParams, "data", params_path).roots())
    s = run_extract(index, p, out, backbone_out, cache_dir)
    if s.losses:
        click.echo(f"extract: scratch ViT loss {np.mean(s.losses[:10]):.3f} -> {np.mean(s.losses[-10:]):.3f}")
    click.echo(f"extract: {s.rows} embeddings of dim {s.dim} ({s.embedded} embedded now, the rest cached), "
               f"{s.labelled} labelled ({s.labels_computed} computed now)")


if __name__ == "__main__":
    main()
