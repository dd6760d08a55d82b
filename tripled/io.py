"""Image reading and dataset folder layouts."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
PAIR_DIRS = (("lq", "gt"), ("input", "target"))


class ImageError(ValueError):
    """An image file that cannot be used; `reason` is a short name for data/rejects.csv."""

    def __init__(self, path: Path | str, reason: str, detail: str = ""):
        super().__init__(f"{path}: {reason}" + (f" ({detail})" if detail else ""))
        self.path, self.reason = str(path), reason


class LayoutError(ValueError):
    """The dataset folder does not have the layout that params say."""


def _open(path: Path, max_pixels: int) -> Image.Image:
    Image.MAX_IMAGE_PIXELS = None  # our own limit below, checked before decoding
    try:
        img = Image.open(path)
    except Exception as e:
        raise ImageError(path, "unreadable", str(e)) from None
    if img.width * img.height > max_pixels:
        img.close()
        raise ImageError(path, "too_many_pixels", f"{img.width}x{img.height} > {max_pixels}")
    return img


def _to_rgb(img: Image.Image) -> np.ndarray:
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
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
            raise ImageError(path, "corrupt", str(e)) from None


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
            raise ImageError(path, "corrupt", str(e)) from None


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


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())


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
            for p in list_images(d):
                if not inside(p, root):
                    rejects.append((str(p), "outside_root"))
                    continue
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
    files, rejects = [], []
    for p in list_images(root):
        if inside(p, root):
            files.append(p)
        else:
            rejects.append((str(p), "outside_root"))
    if not files:
        raise LayoutError(f"layout 'clean': no images under {root}")
    return files, rejects
