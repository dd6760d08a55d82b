"""The `tripled` command: inspect a distilled set, restore images with a trained model."""
from __future__ import annotations

import json
from pathlib import Path

import click
from PIL import Image
from tqdm import tqdm

from tripled.data.images import ImageError, read_image
from tripled.data.layouts import list_images
from tripled.device import pick_device
from tripled.evaluation.restore import load_restorer, restore_image, tile_count
from tripled.selection.card import read_card, render_markdown


@click.group(context_settings=dict(help_option_names=["-h", "--help"]))
def main() -> None:
    """TripleD: distribution-aware dataset distillation for image restoration.

    The pipeline itself runs with `dvc repro`; these commands work on its outputs.
    """


@main.command()
@click.argument("distilled", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="print the card as JSON instead of Markdown.")
def info(distilled: Path, as_json: bool) -> None:
    """Print the card of a DISTILLED set (folder such as data/distilled, or its card.json)."""
    try:
        card = read_card(distilled)
    except (FileNotFoundError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(json.dumps(card, indent=2, sort_keys=True) if as_json else render_markdown(card), nl=False)


@main.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("source", metavar="INPUT", type=click.Path(exists=True, path_type=Path))
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--tile", default=512, show_default=True, help="tile size in pixels (memory grows with its square).")
@click.option("--overlap", default=64, show_default=True, help="pixels shared by neighbouring tiles, blended.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--max-pixels", default=200_000_000, show_default=True,
              help="refuse larger images (decompression bombs).")
def restore(model: Path, source: Path, output: Path, tile: int, overlap: int, device: str, max_pixels: int) -> None:
    """Restore INPUT (an image, or a folder of images) with MODEL (models/restorer.pt; its .json beside it)
    into OUTPUT (a PNG file, or a folder mirroring INPUT's). Images are processed tile by tile with
    overlap, so 4K images run in bounded memory."""
    if tile <= overlap:
        raise click.BadParameter(f"--tile ({tile}) must be larger than --overlap ({overlap})")
    dev = pick_device(device)
    try:
        net = load_restorer(model).to(dev)
    except (FileNotFoundError, ValueError, TypeError, KeyError) as e:
        raise click.ClickException(f"cannot load model {model}: {e}") from None
    if source.is_dir():
        files, outside = list_images(source, source)
        for path, reason in outside:
            click.echo(f"skipped {path}: {reason}", err=True)
        jobs = [(p, (output / p.relative_to(source)).with_suffix(".png")) for p in files]
        if not jobs:
            raise click.ClickException(f"no images under {source}")
    else:
        jobs = [(source, output / f"{source.stem}.png" if output.is_dir() else output)]
    failed = 0
    for src, dst in jobs:
        try:
            image = read_image(src, max_pixels)
        except ImageError as e:
            click.echo(f"skipped {e}", err=True)
            failed += 1
            continue
        h, w = image.shape[:2]
        with tqdm(total=tile_count(h, w, tile, overlap), desc=f"restore {src.name} ({w}x{h})", unit="tile",
                  leave=len(jobs) == 1) as bar:
            restored = restore_image(net, image, tile, overlap, dev, on_tile=bar.update)
        dst.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(restored).save(dst)
    click.echo(f"restored {len(jobs) - failed} image(s) into {output}" + (f", {failed} skipped" if failed else ""))
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
