"""Stage extract: ViT features of thumbnails and full-resolution complexity labels into data/features.zarr."""
from pathlib import Path

import click
import numpy as np

from tripled.data.index import load_index
from tripled.device import use_available_cores
from tripled.features.extract import run_extract
from tripled.features.params import FeatureParams
from tripled.params import load_section
from tripled.stage import StageCommand, index_option, params_option, path_option


@click.command(cls=StageCommand)
@params_option("'features', 'data'")
@index_option()
@path_option("--out", "out", "data/features.zarr")
@path_option("--backbone-out", "backbone_out", "models/vit", "where the backbone used is saved.")
@path_option("--cache", "cache_dir", "data/extract_cache",
             "results by content (resume after a kill, embed only new images); safe to delete.")
def main(params_path: str, index_path: Path, out: Path, backbone_out: Path, cache_dir: Path) -> None:
    """Embed every sample's 128x128 thumbnail with a timm ViT; label a sample at full resolution."""
    use_available_cores()
    p = load_section(FeatureParams, "features", params_path)
    s = run_extract(load_index(index_path, params_path), p, out, backbone_out, cache_dir)
    if s.losses:
        click.echo(f"extract: scratch ViT loss {np.mean(s.losses[:10]):.3f} -> {np.mean(s.losses[-10:]):.3f}")
    click.echo(f"extract: {s.rows} embeddings of dim {s.dim} ({s.embedded} embedded now, the rest cached), "
               f"{s.labelled} labelled ({s.labels_computed} computed now)")


if __name__ == "__main__":
    main()
