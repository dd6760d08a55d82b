"""A folder of real photographs that ship offline (scikit-image, scikit-learn), at native resolution,
for `bench/quality.py --data-root DIR --layout clean`.

    python bench/photos.py DIR
"""
from pathlib import Path

import click
from PIL import Image

from tripled.data.prepare import demo_image

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
          "motorcycle", "china", "flower", "camera", "brick", "grass", "gravel", "moon", "coins", "cell", "clock")


@click.command()
@click.argument("folder", type=click.Path(path_type=Path))
def main(folder: Path) -> None:
    """Write the photographs as PNG files into FOLDER."""
    folder.mkdir(parents=True, exist_ok=True)
    pixels = 0
    for name in PHOTOS:
        img = Image.fromarray(demo_image(name)).convert("RGB")
        img.save(folder / f"{name}.png")
        pixels += img.width * img.height
    click.echo(f"{len(PHOTOS)} photographs, {pixels / 1e6:.1f} Mpixel, in {folder}")


if __name__ == "__main__":
    main()
