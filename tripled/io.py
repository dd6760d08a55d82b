"""Image reading and dataset folder layouts."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import click
import numpy as np
import pandas as pd
import zarr
from PIL import Image, ImageFile, ImageOps

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
PAIR_DIRS = (("lq", "gt"), ("input", "target"))


class ImageError(ValueError):
    """An image file that cannot be used; `reason` is a short name for data/rejects.csv."""

    def __init__(self, path: Path | str, reason: str, detail: str = ""):
        super().__init__(f"{path}: {reason}" + (f" ({detail})" if detail else ""))
        self.path, self.reason = str(path), reason


class LayoutError(click.ClickException, ValueError):
    """The dataset folder does not have the layout that params say, or an index points elsewhere.

    A ClickException, so that a stage prints the message alone and exits with status 1."""


class StoreError(ValueError):
    """A zarr store that is incomplete or holds more than plain numbers."""


# Only these decoders run: Pillow would otherwise also hand files to plugins such as EPS, which
# calls Ghostscript on the file's content. (JPEG includes the multi-picture JPEGs of cameras.)
FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WEBP")
# How a file of each format starts, and how a complete PNG or JPEG ends: a file that starts like
# an image but does not decode is truncated when its end marker is missing, else corrupt.
_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"BM", "BMP"),
               (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"RIFF", "WEBP"))
_END_MARKERS = {"PNG": b"IEND\xaeB`\x82", "JPEG": b"\xff\xd9"}


def _failure(path: Path, error: Exception) -> ImageError:
    """Name why `path` did not decode: not an image at all, cut short, or damaged inside."""
    with open(path, "rb") as f:
        head = f.read(16)
        f.seek(max(0, f.seek(0, os.SEEK_END) - 64))
        tail = f.read()
    fmt = next((name for sig, name in _SIGNATURES if head.startswith(sig)), None)
    if fmt is None:
        return ImageError(path, "not_an_image", f"not a {'/'.join(FORMATS)} file")
    end = _END_MARKERS.get(fmt)
    if end is not None and not tail.rstrip(b"\x00").endswith(end):
        return ImageError(path, "truncated", f"{fmt} without its end marker: {error}")
    return ImageError(path, "corrupt", f"{type(error).__name__}: {error}")


def _open(path: Path, max_pixels: int) -> Image.Image:
    Image.MAX_IMAGE_PIXELS = None  # our own limit below, checked before decoding
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # whatever another library set: a cut-short file is refused
    Image.init()  # registers the TIFF and WebP plugins, so that `formats` can name them
    try:
        empty = path.stat().st_size == 0
        img = None if empty else Image.open(path, formats=FORMATS)
    except (FileNotFoundError, PermissionError, IsADirectoryError) as e:
        raise ImageError(path, "unreadable", str(e)) from None
    except Exception as e:
        raise _failure(path, e) from None
    if img is None:
        raise ImageError(path, "empty_file")
    if img.width * img.height > max_pixels:
        img.close()
        raise ImageError(path, "too_many_pixels", f"{img.width}x{img.height} > data.max_pixels={max_pixels}")
    return img


def _to_rgb(img: Image.Image) -> np.ndarray:
    """8-bit RGB: EXIF orientation applied, 16-bit scaled down, alpha composited on white."""
    img = ImageOps.exif_transpose(img)
    if img.mode.startswith("I"):
        arr = np.asarray(img, dtype=np.float64)
        # 16-bit modes are always 0..65535 (a dark 16-bit image is not 8-bit data); plain "I" has no fixed range.
        full = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / full * 255 + 0.5, 0, 255).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, img)
    return np.asarray(img.convert("RGB"))


def read_image(path: Path | str, max_pixels: int = 200_000_000) -> np.ndarray:
    """Decode any supported image to HxWx3 uint8 RGB, EXIF-rotated; ImageError if unusable."""
    path = Path(path)
    with _open(path, max_pixels) as img:
        try:
            return _to_rgb(img)
        except Exception as e:
            raise _failure(path, e) from None


@lru_cache(maxsize=4)
def read_image_cached(path: str, max_pixels: int = 200_000_000) -> np.ndarray:
    """read_image for consecutive tiles of one source image: decode it once (callers must not write)."""
    img = read_image(path, max_pixels)
    img.flags.writeable = False
    return img


def read_thumbnail(path: Path | str, size: int, max_pixels: int = 200_000_000) -> np.ndarray:
    """size x size RGB thumbnail of a whole image; JPEGs decode reduced."""
    path = Path(path)
    with _open(path, max_pixels) as img:
        try:
            if img.format == "JPEG":
                img.draft("RGB", (size, size))  # DCT-domain downscale: far cheaper than a full decode
            return resize(_to_rgb(img), size)
        except Exception as e:
            raise _failure(path, e) from None


def resize(img: Image.Image | np.ndarray, size: int) -> np.ndarray:
    """Squash to size x size: the ViT judges complexity from a fixed-size thumbnail."""
    img = img if isinstance(img, Image.Image) else Image.fromarray(img)
    if img.size == (size, size):
        return np.asarray(img)
    return np.asarray(img.resize((size, size), Image.BICUBIC, reducing_gap=3.0))


def crop(img: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = box
    return img[y:y + h, x:x + w]


def row_box(row) -> tuple[int, int, int, int]:
    """(x, y, w, h) of an index row: the tile, or the whole image."""
    return int(row.x), int(row.y), int(row.w), int(row.h)


def sample_path(row, side: str) -> str:
    """The 'gt' or 'lq' file of an index row."""
    return row.gt_path if side == "gt" else row.lq_path


def read_index(path: Path | str, roots: list[Path]) -> pd.DataFrame:
    """The sample index, refused if (perhaps pulled from a remote) any image path leads outside
    `roots`: the dataset and the prepared folder are all a stage may read."""
    index = pd.read_parquet(path)
    for col in ("gt_path", "lq_path"):
        for p in index[col].unique():
            if not any(inside(Path(p), root) for root in roots):
                raise LayoutError(f"{path}: image path {p!r} ({col}) is outside the data folders "
                                  f"{[str(r) for r in roots]}; rerun prepare instead of using this index")
    return index


def read_sample(row, side: str) -> np.ndarray:
    """The 'gt' or 'lq' image of an index row, cropped to its box."""
    return crop(read_image_cached(sample_path(row, side)), row_box(row))


def file_hash(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def inside(path: Path, root: Path) -> bool:
    """True if `path` (symlinks resolved) stays inside `root`."""
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def list_images(folder: Path, root: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files under `folder`, and rejects for links that lead outside `root`.

    Linked folders are not descended into: one inside the root is reached by its real path anyway,
    one outside it is reported.
    """
    files, rejects = [], []
    for top, dirs, names in os.walk(folder, onerror=lambda e: rejects.append((e.filename, "unreadable"))):
        for d in list(dirs):
            if (Path(top) / d).is_symlink():
                dirs.remove(d)
                if not inside(Path(top) / d, root):
                    rejects.append((str(Path(top) / d), "outside_root"))
        for name in names:
            path = Path(top) / name
            if path.suffix.lower() not in IMAGE_EXTS or not path.is_file():
                continue
            if inside(path, root):
                files.append(path)
            else:
                rejects.append((str(path), "outside_root"))
    return sorted(files), sorted(rejects)


@dataclass(frozen=True)
class Pair:
    task: str
    stem: str
    lq: Path
    gt: Path


def scan_paired(root: Path) -> tuple[list[Pair], list[tuple[str, str]]]:
    """Read `<root>/<task>/{lq,gt}/` (or input/target); pairs match by file stem.

    Returns the pairs and the rejects (path, reason) such as a missing partner.
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"data.root is not a folder: {root}")
    pairs, rejects = [], []
    tasks = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for task_dir in tasks:
        dirs = next(((task_dir / a, task_dir / b) for a, b in PAIR_DIRS
                     if (task_dir / a).is_dir() and (task_dir / b).is_dir()), None)
        if dirs is None:
            raise LayoutError(f"layout 'paired': {task_dir} needs sub-folders lq/ and gt/ (or input/ and target/)")
        sides = []
        for d in dirs:
            files: dict[str, Path] = {}
            found, outside = list_images(d, root)
            rejects.extend(outside)
            for p in found:
                stem = p.relative_to(d).with_suffix("").as_posix()
                if stem in files:
                    rejects.append((str(p), "duplicate_stem"))
                    continue
                files[stem] = p
            sides.append(files)
        lq, gt = sides
        for stem in sorted(set(lq) | set(gt)):
            if stem in lq and stem in gt:
                pairs.append(Pair(task_dir.name, stem, lq[stem], gt[stem]))
            else:
                rejects.append((str(lq.get(stem) or gt[stem]), "missing_partner"))
    if not pairs:
        raise LayoutError(f"layout 'paired': no image pairs under {root} (expected <root>/<task>/lq|gt/<name>.png)")
    return pairs, rejects


def scan_clean(root: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """All images under `root`, recursively, that stay inside it."""
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"data.root is not a folder: {root}")
    files, rejects = list_images(root, root)
    if not files:
        raise LayoutError(f"layout 'clean': no images under {root}")
    return files, rejects


def staging_path(path: Path | str) -> Path:
    """An empty hidden sibling of `path` to write an output into before publish()."""
    path = Path(path)
    staged = path.with_name(f".{path.name}.partial")
    _remove(staged)  # left by a run that was killed
    path.parent.mkdir(parents=True, exist_ok=True)
    return staged


def publish(staged: Path, path: Path | str) -> None:
    """Move a finished output into place: a killed run never leaves one that reads as complete."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():  # a rename cannot replace a non-empty folder
        old = path.with_name(f".{path.name}.old")
        _remove(old)
        os.replace(path, old)
        os.replace(staged, path)
        _remove(old)
    else:
        os.replace(staged, path)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


# A store pulled from a remote is data only: codecs that (de)compress, check or reorder bytes, and
# plain numeric types. Anything else (a pickle codec, object arrays, zarr v2 metadata) is refused
# before a byte of it is decoded.
STORE_CODECS = {"bytes", "zstd", "gzip", "blosc", "crc32c", "transpose", "sharding_indexed"}
STORE_DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                "float16", "float32", "float64"}


def _check_codecs(codecs: list, where: Path) -> None:
    for codec in codecs:
        name = codec.get("name") if isinstance(codec, dict) else codec
        if not isinstance(name, str) or name not in STORE_CODECS:
            raise StoreError(f"{where}: codec {name!r} is not allowed (only {sorted(STORE_CODECS)})")
        config = (codec.get("configuration") or {}) if isinstance(codec, dict) else {}
        _check_codecs(list(config.get("codecs", [])) + list(config.get("index_codecs", [])), where)


def open_store(path: Path | str) -> zarr.Group:
    """A zarr v3 group, read-only, after checking that every file stays inside it and every array
    holds plain numbers behind allowed codecs."""
    path = Path(path)
    if not (path / "zarr.json").is_file():
        raise StoreError(f"{path}: not a zarr v3 store (no zarr.json)")
    for top, dirs, names in os.walk(path):
        for name in dirs + names:
            entry = Path(top) / name
            if entry.is_symlink() and not inside(entry, path):
                raise StoreError(f"{entry}: a link that leads outside the store")
            if name in (".zarray", ".zgroup", ".zattrs", ".zmetadata"):
                raise StoreError(f"{entry}: zarr v2 metadata; only zarr v3 stores are read")
        if "zarr.json" not in names:
            continue
        meta_path = Path(top) / "zarr.json"
        try:
            meta = json.loads(meta_path.read_text())
        except (ValueError, UnicodeDecodeError) as e:
            raise StoreError(f"{meta_path}: not valid JSON ({e})") from None
        if not isinstance(meta, dict) or meta.get("zarr_format") != 3:
            raise StoreError(f"{meta_path}: not zarr v3 metadata")
        if meta.get("node_type") == "array":
            dtype = meta.get("data_type")
            if not isinstance(dtype, str) or dtype not in STORE_DTYPES:
                raise StoreError(f"{meta_path}: data type {dtype!r} is not a plain number type")
            _check_codecs(meta.get("codecs") or [], meta_path)
        elif meta.get("node_type") != "group":
            raise StoreError(f"{meta_path}: unknown node type {meta.get('node_type')!r}")
    return zarr.open_group(path, mode="r", zarr_format=3)
