"""Benchmark of the extract stage on 4K JPEGs; prints one JSON object.

In the same run: the decode ceiling (reduced JPEG decode + resize to 128 on all cores, no model), the
naive path (full decode + resize, all cores) and the extract stage end to end (run_extract: worker
start, backbone, embedding, cache, store), best of --repeats each; the peak memory of the stage script
on n and 2n images; and the time of `dvc status` on a synthetic 1 M-row feature store.

The extract timing starts with a warm label cache: the full-resolution labels of `label_samples` rows
are a fixed cost, not a per-image one (labels_s reports it).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import provenance  # noqa: E402
from tripled.data.images import read_image, resize  # noqa: E402
from tripled.data.layouts import list_images  # noqa: E402
from tripled.features.backbone import create_backbone  # noqa: E402
from tripled.features.complexity import LABELS  # noqa: E402
from tripled.features.decode import DecodePool, chunks, default_workers, index_rows, thumb_batch  # noqa: E402
from tripled.features.extract import run_extract  # noqa: E402
from tripled.features.params import FeatureParams  # noqa: E402
from tripled.features.store import write_store  # noqa: E402
from tripled.hashing import file_hash  # noqa: E402

SOURCES = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
           "colorwheel", "cat", "motorcycle_left")
SIZE_4K = (3840, 2160)


def _source(name: str) -> np.ndarray:
    import skimage.data

    if name == "motorcycle_left":
        return skimage.data.stereo_motorcycle()[0]
    return np.asarray(Image.fromarray(getattr(skimage.data, name)()).convert("RGB"))


def make_jpeg(i: int, folder: str, size: tuple[int, int] = SIZE_4K) -> str:
    """A photo-like JPEG (4K by default): a scikit-image picture upscaled, with sensor-like noise (realistic
    file size)."""
    rng = np.random.default_rng(i)
    img = Image.fromarray(_source(SOURCES[i % len(SOURCES)])).resize(size, Image.BICUBIC)
    arr = np.asarray(img).astype(np.int16) + rng.integers(-6, 7, (size[1], size[0], 1), dtype=np.int16)
    path = Path(folder) / f"img{i:05d}.jpg"
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path, quality=90)
    return str(path)


def jpeg_index(files: list[Path]) -> pd.DataFrame:
    rows = []
    for f in files:
        with Image.open(f) as img:
            w, h = img.size
        rows.append(dict(id=f.stem, task="bench", source=f.stem, split="train", lq_path=str(f), gt_path=str(f),
                         x=0, y=0, w=w, h=h, height=h, width=w, hash=file_hash(f)[:16]))
    return pd.DataFrame(rows).sort_values("id").reset_index(drop=True)


def _naive_batch(batch, size: int) -> np.ndarray:
    return np.stack([resize(read_image(s.path), size) for s in batch])


def decode_rate(pool: DecodePool, fn, index: pd.DataFrame, size: int) -> float:
    rows = index_rows(index, "gt")
    t = time.perf_counter()
    for _ in pool.imap(fn, chunks(rows.specs(range(len(index)))), size):
        pass
    return len(index) / (time.perf_counter() - t)


def fixed_backbone(base: FeatureParams, work: Path) -> FeatureParams:
    """The params with a fixed backbone, saved in work/vit: no backbone training inside the timings."""
    create_backbone(base).save(work / "vit", "scratch")
    return base.model_copy(update=dict(weights=str(work / "vit/backbone.pt"), label_samples=2))


def extract_rate(index: pd.DataFrame, p: FeatureParams, work: Path, name: str) -> float:
    """img/s of the extract stage end to end with the label cache work/labels_cache (filled by a first
    run_extract) warm and no embeddings cached."""
    cache = work / f"cache-{name}"
    shutil.copytree(work / "labels_cache", cache, ignore=shutil.ignore_patterns("emb-*"))
    t = time.perf_counter()
    run_extract(index, p, work / f"{name}.zarr", work / f"vit-{name}", cache)
    return len(index) / (time.perf_counter() - t)


def _peak_memory_mb(cmd: list[str]) -> tuple[float, float]:
    """Peak RSS of the command's own process, and peak PSS of its whole process tree (workers included)."""
    proc = psutil.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak_rss = peak_pss = 0
    while proc.poll() is None:
        try:
            tree = [proc] + proc.children(recursive=True)
            peak_rss = max(peak_rss, proc.memory_info().rss)
            peak_pss = max(peak_pss, sum(p.memory_full_info().pss for p in tree))
        except psutil.Error:  # a process ended between listing and reading
            pass
        time.sleep(0.05)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode})")
    return peak_rss / 2**20, peak_pss / 2**20


def _dvc_status_1m(work: Path, rows: int, dim: int) -> float:
    repo = work / "dvc1m"
    repo.mkdir()
    env = dict(os.environ, DVC_NO_ANALYTICS="1")

    def run(*cmd: str) -> None:
        subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True)

    run("git", "init", "-q")
    run("dvc", "init", "-q")
    rng = np.random.default_rng(0)
    write_store(repo / "features.zarr", rows, dim, dict(complete=True),
                lambda a, b: (rng.standard_normal((b - a, dim)).astype(np.float16),
                              rng.random((b - a, len(LABELS)), np.float32)))
    run("dvc", "add", "-q", "features.zarr")
    times = []
    for _ in range(3):
        t = time.perf_counter()
        run("dvc", "status")
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=192,
                    help="4K JPEGs to generate (ignored with --folder); the stage's fixed start-up (~0.5 s) needs "
                         "a few seconds of decoding to amortise")
    ap.add_argument("--folder", type=Path, help="a folder of JPEGs to use instead")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--precision", choices=["auto", "fp32", "bf16"], help="features.precision (default: params.yaml)")
    ap.add_argument("--rows-1m", type=int, default=1_000_000, help="rows of the synthetic store for dvc status")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_extract_"))
    try:
        base = load_params()
        if args.precision:
            base = base.model_copy(update=dict(precision=args.precision))
        if args.folder:
            files, _ = list_images(args.folder, args.folder)
        else:
            (work / "img").mkdir()
            with DecodePool(0) as pool:
                files = [Path(f) for f in pool.imap(make_jpeg, range(args.images), str(work / "img"))]
        index = jpeg_index(files)
        p = fixed_backbone(base, work)

        t = time.perf_counter()
        run_extract(index, p, work / "warm.zarr", work / "warm_vit", work / "labels_cache")
        labels_s = time.perf_counter() - t

        ceiling, naive, extract = [], [], []
        with DecodePool(p.workers) as pool:
            for r in range(args.repeats):
                ceiling.append(decode_rate(pool, thumb_batch, index, p.thumb_size))
                naive.append(decode_rate(pool, _naive_batch, index, p.thumb_size))
                extract.append(extract_rate(index, p, work, f"f{r}"))

        half = len(index) // 2
        index.iloc[:half].to_parquet(work / "index_n.parquet")
        index.to_parquet(work / "index_2n.parquet")
        (work / "params.yaml").write_text(yaml.safe_dump(dict(features=p.model_dump(),
                                                             data=dict(root=str(args.folder or work / "img")))))
        memory = {}
        for name in ("n", "2n"):
            memory[name] = _peak_memory_mb(
                [sys.executable, str(ROOT / "stages/extract.py"), "--params", str(work / "params.yaml"),
                 "--index", str(work / f"index_{name}.parquet"), "--out", str(work / f"m_{name}.zarr"),
                 "--backbone-out", str(work / f"mvit_{name}"), "--cache", str(work / f"mcache_{name}")])

        dim = create_backbone(base).model.num_features
        result = dict(
            images=len(index), cores=len(os.sched_getaffinity(0)), workers=default_workers(p.workers),
            precision=p.precision,
            ceiling_img_s=round(max(ceiling), 2), naive_img_s=round(max(naive), 2),
            extract_img_s=round(max(extract), 2), ratio_to_ceiling=round(max(extract) / max(ceiling), 3),
            naive_to_ceiling=round(max(naive) / max(ceiling), 3), labels_s=round(labels_s, 2),
            peak_rss_mb_n=round(memory["n"][0], 1), peak_rss_mb_2n=round(memory["2n"][0], 1),
            peak_tree_pss_mb_n=round(memory["n"][1], 1), peak_tree_pss_mb_2n=round(memory["2n"][1], 1),
            dvc_status_s_1m=round(_dvc_status_1m(work, args.rows_1m, dim), 3), store_dim=dim,
            mean_jpeg_mb=round(float(np.mean([f.stat().st_size for f in files])) / 2**20, 2),
            runs=dict(ceiling=[round(x, 2) for x in ceiling], naive=[round(x, 2) for x in naive],
                      extract=[round(x, 2) for x in extract]),
            provenance=provenance(dict(features=p.model_dump(), images=len(index))))
        print(json.dumps(result))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def load_params() -> FeatureParams:
    """The project's features params (backbone, thumbnail size, batch size, workers)."""
    return FeatureParams(**yaml.safe_load((ROOT / "params.yaml").read_text())["features"])


if __name__ == "__main__":
    main()
