"""Build the paired dataset index: read a layout (or make the demo set), tile, split by source."""
from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from tripled.data.degradations import DegradationSpec, degrade
from tripled.data.images import ImageError, read_image
from tripled.data.index import INDEX_COLUMNS
from tripled.data.layouts import scan_clean, scan_paired
from tripled.data.params import DataParams
from tripled.errors import DataError
from tripled.hashing import file_hash, stable_int

# Photographs that ship inside installed packages (no download), varied in content and complexity,
# half of them in colour. Graphics (colorwheel, text) and near-black frames (hubble) are left out:
# blur barely changes a flat graphic, and a clean dark frame looks like a low-light input.
DEMO_IMAGES = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "motorcycle", "china",
               "flower", "camera", "brick", "grass", "gravel", "moon", "clock", "coins", "cell")


def demo_image(name: str) -> np.ndarray:
    import skimage.data
    from sklearn.datasets import load_sample_image

    if name in ("china", "flower"):
        return load_sample_image(f"{name}.jpg")
    if name == "motorcycle":
        return skimage.data.stereo_motorcycle()[0]  # the left view; the right one is near-identical
    return np.asarray(getattr(skimage.data, name)())


def write_demo_images(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in DEMO_IMAGES:
        Image.fromarray(demo_image(name)).convert("RGB").save(folder / f"{name}.png")
    return folder


def tile_boxes(height: int, width: int, tile: int) -> list[tuple[int, int, int, int]]:
    """(x, y, w, h) boxes covering the image; the last row/column is aligned to the border."""
    if tile <= 0 or (height <= tile and width <= tile):
        return [(0, 0, width, height)]

    def starts(n: int) -> list[int]:
        if n <= tile:
            return [0]
        s = list(range(0, n - tile + 1, tile))
        return s if s[-1] == n - tile else s + [n - tile]

    return [(x, y, min(tile, width), min(tile, height)) for y in starts(height) for x in starts(width)]


class Rejects:
    """Files left out, as (path, reason) rows for data/rejects.csv; with `strict` the first ones stop
    the run, with a summary of what was found."""

    def __init__(self, strict: bool):
        self.rows: list[tuple[str, str]] = []
        self.strict = strict

    def add(self, path: Path | str, reason: str) -> None:
        self.extend([(str(path), reason)])

    def extend(self, rows: list[tuple[str, str]]) -> None:
        self.rows.extend(rows)
        if self.strict and self.rows:
            raise DataError("data.strict is true and the dataset has unusable files (set it to false to "
                            f"skip them and list them in rejects.csv):\n{self.summary()}")

    def summary(self, shown: int = 10) -> str:
        counts = Counter(reason for _, reason in self.rows)
        lines = [f"  {n} {reason}" for reason, n in sorted(counts.items())]
        lines += [f"  {path}: {reason}" for path, reason in self.rows[:shown]]
        if len(self.rows) > shown:
            lines.append(f"  ... and {len(self.rows) - shown} more")
        return "\n".join(lines)


def pixel_hash(*images: np.ndarray) -> str:
    """Identity of decoded content: the same picture saved twice, or in another format, is one sample."""
    h = hashlib.sha256()
    for img in images:
        h.update(str(img.shape).encode())
        h.update(np.ascontiguousarray(img).tobytes())
    return h.hexdigest()


def _save_png(img: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


def _synthesise(files: list[Path], root: Path, specs: list[DegradationSpec], out: Path, p: DataParams,
                rejects: Rejects) -> list[dict]:
    """One pair per clean image and degradation; degraded images are written under `out`."""
    pairs, seen, stems = [], set(), set()
    for f in tqdm(files, desc="prepare: degrade", unit="img"):
        try:
            clean = read_image(f, p.max_pixels)
        except ImageError as e:
            rejects.add(e.path, e.reason)
            continue
        content = pixel_hash(clean)
        if content in seen:
            rejects.add(f, "duplicate_content")
            continue
        rel = f.relative_to(root).with_suffix("").as_posix()
        if rel in stems:  # a.png and a.jpg would share one lq file and one sample id
            rejects.add(f, "duplicate_stem")
            continue
        seen.add(content)
        stems.add(rel)
        digest = file_hash(f)
        for spec in specs:
            lq_path = out / spec.task / "lq" / f"{rel}.png"
            _save_png(degrade(clean, spec, stable_int(p.seed, rel, spec.task)), lq_path)
            pairs.append(dict(task=spec.task, stem=rel, source=rel, lq=lq_path, gt=f, size=clean.shape[:2],
                              digest=file_hash(lq_path) + digest))
    return pairs


def _paired(root: Path, p: DataParams, rejects: Rejects) -> list[dict]:
    found, bad = scan_paired(root, p.pairing)
    rejects.extend(bad)
    pairs, seen = [], set()
    for pair in tqdm(found, desc="prepare: check pairs", unit="pair"):
        try:
            lq, gt = read_image(pair.lq, p.max_pixels), read_image(pair.gt, p.max_pixels)
        except ImageError as e:
            rejects.add(e.path, e.reason)
            continue
        if lq.shape != gt.shape:
            rejects.add(pair.lq, "size_mismatch")
            continue
        content = pixel_hash(lq, gt)
        if content in seen:
            rejects.add(pair.lq, "duplicate_content")
            continue
        seen.add(content)
        pairs.append(dict(task=pair.task, stem=pair.stem, source=f"{pair.task}/{pair.source}",
                          lq=pair.lq, gt=pair.gt, size=gt.shape[:2], digest=file_hash(pair.lq) + file_hash(pair.gt)))
    return pairs


def _test_sources(sources: list[str], fraction: float, seed: int) -> set[str]:
    ranked = sorted(set(sources), key=lambda s: stable_int(seed, "split", s))
    n = int(round(fraction * len(ranked)))
    if fraction > 0 and len(ranked) >= 2:
        n = min(max(n, 1), len(ranked) - 1)
    return set(ranked[:n])


def build_index(p: DataParams, out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Index of samples (a sample is a pair, or a tile of one) and the rejects (path, reason).

    `out` receives what this stage makes: the demo's clean images and synthesised degraded images.
    """
    out.mkdir(parents=True, exist_ok=True)  # a DVC output even when nothing is synthesised
    rejects = Rejects(p.strict)
    specs = [DegradationSpec.from_dict(d) for d in p.degradations]
    if p.root == "demo":
        root = write_demo_images(out / "clean")
        pairs = _synthesise(scan_clean(root)[0], root, specs, out, p, rejects)
    elif p.layout == "clean":
        root = Path(p.root)
        files, bad = scan_clean(root)
        rejects.extend(bad)
        pairs = _synthesise(files, root, specs, out, p, rejects)
    else:
        pairs = _paired(Path(p.root), p, rejects)
    if not pairs:
        raise DataError(f"no usable images under {p.root} ({len(rejects.rows)} rejected):\n{rejects.summary()}")

    # Paired sets hold different images per task, so each task is split on its own.
    test: set[str] = set()
    for task in sorted({q["task"] for q in pairs}) if p.layout == "paired" and p.root != "demo" else [None]:
        test |= _test_sources([q["source"] for q in pairs if task in (None, q["task"])], p.test_fraction, p.seed)

    rows = []
    for q in pairs:
        height, width = q["size"]
        for x, y, w, h in tile_boxes(height, width, p.tile):
            sid = f"{q['task']}/{q['stem']}" + (f"@{x},{y}" if p.tile else "")
            rows.append(dict(id=sid, task=q["task"], source=q["source"],
                             split="test" if q["source"] in test else "train",
                             lq_path=str(q["lq"]), gt_path=str(q["gt"]), x=x, y=y, w=w, h=h,
                             height=height, width=width,
                             hash=hashlib.sha256(f"{q['digest']}|{x},{y},{w},{h}".encode()).hexdigest()[:16]))
    index = pd.DataFrame(rows, columns=INDEX_COLUMNS).sort_values("id", kind="stable").reset_index(drop=True)
    return index, pd.DataFrame(rejects.rows, columns=["path", "reason"])
