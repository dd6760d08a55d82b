"""A large folder of real photographs and photographic textures from Debian packages, for
`bench/quality.py --data-root DIR --layout clean`: a set where selection should matter.

    python bench/large.py DIR [--cache DIR] [--max-side 512] [--packages p1,p2,...]

Each package is fetched with `apt-get download` (kept in the cache) and unpacked with `dpkg-deb -x`;
its .jpg/.jpeg/.png/.webp files are capped to --max-side (Lanczos, aspect kept) and kept only if they
look like photographs (keep_reason). DIR receives `<package>__<slug of path>.png` per kept image and
manifest.csv (the clean layout reads image files only, so the manifest stays beside them), and a one-line
JSON summary is printed.

Packages (DEFAULT; Debian bookworm, about 760 MB of .deb files), chosen after looking through the candidates;
with max-side 512 they give 296 images, 57 Mpixel, 14,030 64-px tiles, about 52,600 training samples
(5 tasks, 75 % of the images; 768 px: 80,000):
  opencv-doc            examples/data: ~30 real photos (scenes, faces, fruit, aerials); html/ is screenshots.
  supertuxkart-data     data/textures: ~225 photographic textures (rock, wood, bark, brick, sand, sky);
                        tracks/ and karts/ are mostly UV atlases and screenshots. The bulk of the set:
                        without it the rest stay under 40,000 samples. Its few files named
                        wallpaper/background (menu skins, a track texture) are skipped.
  extremetuxracer-data  terrains/: ~35 photographic ground textures (snow, ice, rock, grass), 256 px.
Also known (PACKAGES, opt-in with --packages): stellarium-data (246 MB): its nebula photographs are dark
frames (rejected), leaving ~40 planet maps and textures. Left out: tuxpaint-stamps-default (every stamp
has transparency), marble-data (only manual screenshots), gcompris-qt-data (only Qt .rcc archives),
celestia-common (not in bookworm). Desktop wallpaper/background packages are never used (kept for
independent checks); any path naming a wallpaper or background is skipped too.
"""
from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import click
import numpy as np
from PIL import Image, ImageOps

from tripled.data.prepare import tile_boxes

# package -> folders (inside the package) to walk; () = the whole package
PACKAGES: dict[str, tuple[str, ...]] = {
    "opencv-doc": ("usr/share/doc/opencv-doc/examples/data",),  # html/ holds doc screenshots
    "stellarium-data": tuple(f"usr/share/stellarium/{d}" for d in ("nebulae", "textures", "scenery3d")),
    "extremetuxracer-data": ("usr/share/games/etr/terrains",),  # the rest: rendered skies, sprites
    "supertuxkart-data": ("usr/share/games/supertuxkart/data/textures",),  # tracks/, karts/: atlases, screenshots
}
DEFAULT = ("opencv-doc", "extremetuxracer-data", "supertuxkart-data")
EXTS = {".jpg", ".jpeg", ".png", ".webp"}
FORBIDDEN = re.compile(r"wallpaper|background", re.IGNORECASE)
# file names of what is drawn or computed, not photographed: normal/bump maps, screenshots, logos, signs
NOT_PHOTO = re.compile(r"normal|nrm|bump|(^|[_-])nm([_.-]|$)|screenshot|sshot|postcard|logo|icon|sign|banner|flag",
                       re.IGNORECASE)
TILE = 64
MIN_SIDE = 192  # after capping: three tiles across at least
GREY_SPREAD = 2.0  # mean (max - min channel) below this: grey, give or take JPEG chroma noise
MIN_COLOURS = 1024  # logos, drawings and palette images have fewer distinct colours
MAX_FILL = 0.25  # one exact colour over this share of the pixels: a drawn fill or a padded border
TILE_STD = 4.0  # luminance std (0-255) of a tile with visible detail
TEXTURED_SHARE = 0.5  # fewer detailed tiles than this share: near-flat (sky, night, plain fills)
DARK_LEVEL, DARK_SHARE = 32, 0.5  # over half the pixels this dark: a clean dark frame looks like a low-light input
MANIFEST = ["name", "package", "package_version", "source_path", "width", "height", "sha256"]
TRAIN_SHARE, TASKS = 0.75, 5  # data.test_fraction 0.25 and the five degradations of params.yaml


def cap(img: Image.Image, max_side: int) -> Image.Image:
    """`img` with its longer side at most `max_side` (Lanczos, aspect kept)."""
    scale = max_side / max(img.size)
    if scale >= 1:
        return img
    return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.LANCZOS)


def load(path: Path, max_side: int) -> np.ndarray:
    """The decoded, capped image as H x W x 3 (RGB) or x 4 (with alpha) uint8; raises on undecodable."""
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img)  # as tripled's reader sees it
        alpha = "A" in img.getbands() or "transparency" in img.info
        img = img.convert("RGBA" if alpha else "RGB")
    return np.asarray(cap(img, max_side))


def tiles(height: int, width: int) -> int:
    """64-px samples `prepare` cuts from an image of this size."""
    return len(tile_boxes(height, width, TILE))


def keep_reason(arr: np.ndarray) -> str | None:
    """None if `arr` (H x W x 3|4 uint8) looks like a photograph, else why not."""
    if arr.shape[2] == 4 and arr[..., 3].min() < 255:
        return "transparent"
    rgb = arr[..., :3]
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE:
        return "too_small"
    if (rgb.max(2) - rgb.min(2)).mean() < GREY_SPREAD:
        return "grayscale"
    packed = (rgb[..., 0].astype(np.uint32) << 16 | rgb[..., 1].astype(np.uint32) << 8 | rgb[..., 2]).ravel()
    _, counts = np.unique(packed, return_counts=True)
    if len(counts) < MIN_COLOURS:
        return "few_colours"
    if counts.max() > MAX_FILL * packed.size:
        return "flat_fill"
    lum = rgb @ np.array([0.299, 0.587, 0.114])
    stds = [lum[y:y + th, x:x + tw].std() for x, y, tw, th in tile_boxes(h, w, TILE)]
    if np.mean(np.array(stds) > TILE_STD) < TEXTURED_SHARE:
        return "near_flat"
    if np.mean(lum < DARK_LEVEL) > DARK_SHARE:
        return "dark"
    return None


def path_reason(rel: str) -> str | None:
    """Why a file is skipped by its path alone: wallpapers and backgrounds are kept aside for independent
    checks; some names say the picture is not a photograph."""
    if FORBIDDEN.search(rel):
        return "wallpaper_or_background"
    if NOT_PHOTO.search(rel.rsplit("/", 1)[-1]):
        return "not_photo_name"
    return None


def pixel_key(arr: np.ndarray) -> str:
    """Hash of the decoded pixels and their shape: the same picture under two names is kept once."""
    return hashlib.sha256(repr(arr.shape).encode() + arr.tobytes()).hexdigest()


def output_name(package: str, rel: str, taken: set[str]) -> str:
    """`<package>__<slug>.png`: only [A-Za-z0-9._-], short enough for any file system, unique in `taken`."""
    slug = re.sub(r"[^A-Za-z0-9.-]+", "_", rel.removeprefix("usr/share/")).strip("_.")
    digest = hashlib.sha1(f"{package}/{rel}".encode()).hexdigest()[:8]
    if len(slug) > 120:
        slug = f"{slug[:111]}-{digest}"
    name = f"{package}__{slug}.png"
    if name in taken:  # two paths that differ only in characters the slug drops
        name = f"{package}__{slug}-{digest}.png"
    taken.add(name)
    return name


def _sh(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise click.ClickException(f"{cmd[0]} is not installed: this bench needs Debian's apt-get and dpkg-deb")


def unpack(package: str, cache: Path) -> tuple[Path, str]:
    """The unpacked package (downloaded and extracted once, into `cache`) and its version."""
    debs = sorted(cache.glob(f"{package}_*.deb"))
    if not debs:
        out = _sh(["apt-get", "download", package], cwd=cache)
        debs = sorted(cache.glob(f"{package}_*.deb"))
        if out.returncode or not debs:
            why = (out.stderr.strip().splitlines() or ["no .deb file appeared"])[-1]
            raise click.ClickException(f"package {package!r}: apt-get download failed: {why}")
    deb = max(debs, key=lambda p: p.stat().st_mtime)  # the newest download if several versions are cached
    version = _sh(["dpkg-deb", "-f", str(deb), "Version"]).stdout.strip()
    root = cache / "x" / deb.stem
    if not (root / ".done").exists():
        shutil.rmtree(root, ignore_errors=True)  # a half-extracted tree from an interrupted run
        root.mkdir(parents=True)
        out = _sh(["dpkg-deb", "-x", str(deb), str(root)])
        if out.returncode:
            raise click.ClickException(f"package {package!r}: dpkg-deb -x {deb.name} failed: {out.stderr.strip()}")
        (root / ".done").touch()
    return root, version


def candidates(root: Path, folders: tuple[str, ...]) -> list[str]:
    """Image files of an unpacked package, as sorted paths relative to `root`."""
    tops = [root / f for f in folders] or [root]
    return sorted({p.relative_to(root).as_posix() for top in tops for p in top.rglob("*")
                   if p.suffix.lower() in EXTS and p.is_file() and not p.is_symlink()})


def judge(root: Path, rel: str, max_side: int, seen: set[str]) -> tuple[np.ndarray | None, str | None]:
    """The capped image and None if it is kept, else (None or the image, why not); adds kept pixels to `seen`."""
    if reason := path_reason(rel):
        return None, reason
    try:
        arr = load(root / rel, max_side)
    except Exception:  # whatever the decoder raises, the file is unusable
        return None, "undecodable"
    if reason := keep_reason(arr):
        return arr, reason
    key = pixel_key(arr[..., :3])
    if key in seen:
        return arr, "duplicate"
    seen.add(key)
    return arr, None


def _clear(folder: Path) -> None:
    """Remove a previous run's images; refuse a folder holding other images (the layout would read them)."""
    manifest = folder / "manifest.csv"
    ours = set()
    if manifest.exists():
        with open(manifest, newline="") as f:
            ours = {row["name"] for row in csv.DictReader(f)}
    others = [p.name for p in folder.iterdir() if p.suffix.lower() in EXTS | {".bmp", ".tif", ".tiff"}
              and p.name not in ours]
    if others:
        raise click.ClickException(f"{folder} holds images this bench did not write ({others[0]}, ...): "
                                   "use an empty folder")
    for name in ours:
        (folder / name).unlink(missing_ok=True)


def build(folder: Path, packages: list[str], cache: Path, max_side: int) -> dict:
    """Write the kept images and manifest.csv into `folder`; return the summary."""
    for package in packages:
        if FORBIDDEN.search(package):
            raise click.ClickException(f"package {package!r}: wallpaper/background packages are kept aside")
    folder.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    _clear(folder)
    rows, seen, taken = [], set(), set()
    kept: dict[str, int] = {}
    rejected: dict[str, dict[str, int]] = {}
    pixels = n_tiles = 0
    for package in packages:
        root, version = unpack(package, cache)
        kept[package], rejected[package] = 0, {}
        for rel in candidates(root, PACKAGES.get(package, ())):
            arr, reason = judge(root, rel, max_side, seen)
            if reason:
                rejected[package][reason] = rejected[package].get(reason, 0) + 1
                continue
            name = output_name(package, rel, taken)
            Image.fromarray(arr[..., :3]).save(folder / name)
            h, w = arr.shape[:2]
            rows.append(dict(name=name, package=package, package_version=version, source_path=rel, width=w,
                             height=h, sha256=hashlib.sha256((folder / name).read_bytes()).hexdigest()))
            kept[package] += 1
            pixels += w * h
            n_tiles += tiles(h, w)
    with open(folder / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST)
        writer.writeheader()
        writer.writerows(rows)
    return dict(images=len(rows), mpixel=round(pixels / 1e6, 1), tiles=n_tiles,
                train_samples=int(n_tiles * TASKS * TRAIN_SHARE), kept=kept,
                rejected={p: dict(sorted(r.items())) for p, r in rejected.items()})


@click.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path),
              default=Path.home() / ".cache" / "tripled-debian", show_default=True,
              help="where the .deb files are downloaded and unpacked (kept between runs)")
@click.option("--max-side", default=512, show_default=True, type=click.IntRange(min=MIN_SIDE),
              help="longer side cap (Lanczos), so big images do not dominate")
@click.option("--packages", default=",".join(DEFAULT), show_default=True,
              help="comma-separated Debian packages")
def main(folder: Path, cache: Path, max_side: int, packages: str) -> None:
    """Write the photographs found in Debian packages as PNG files into FOLDER."""
    start = time.perf_counter()
    summary = build(folder, [p.strip() for p in packages.split(",") if p.strip()], cache, max_side)
    click.echo(json.dumps({**summary, "seconds": round(time.perf_counter() - start, 1)}))


if __name__ == "__main__":
    main()
