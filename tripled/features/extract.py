"""The extract stage's work: labels, backbone and the embedding of every row, resumable and incremental.

Results go to a content-addressed cache first (tripled.features.cache): labels keyed by row content, the
scratch backbone by its training inputs, embeddings by row content within a namespace named by the
backbone's fingerprint (weights, config, code, device). A killed run resumes from the cache; a run on a
grown index decodes and embeds only the new rows. The feature store is then assembled from the cache
shard by shard and marked complete last.
"""
from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import PIL
import timm
import torch
from torch import nn
from tqdm import tqdm

from tripled.data import images
from tripled.device import pick_device, use_bf16
from tripled.features import backbone as backbone_code
from tripled.features import complexity, decode
from tripled.features.backbone import (
    Backbone,
    create_backbone,
    embed_thumbs,
    fingerprint,
    label_sample,
    load_backbone,
    train_scratch,
)
from tripled.features.batches import Batch, UnitCollector, plan
from tripled.features.cache import UnitCache, content_keys
from tripled.features.complexity import LABELS
from tripled.features.decode import (
    DECODE_JOB_ROWS,
    DecodePool,
    Rows,
    chunks,
    index_rows,
    jpeg_bytes,
    label_job,
    thumb_batch,
)
from tripled.features.params import FeatureParams
from tripled.features.store import write_store
from tripled.hashing import code_hash, value_hash
from tripled.publish import atomic

LABEL_UNIT_ROWS = 64  # full-resolution decodes are slow: save labels often
# The code that computes each cached result: editing it starts a new cache namespace.
LABEL_CODE = (images, decode, complexity)
BACKBONE_CODE = (backbone_code, images, decode, complexity)
EMBED_CODE = (backbone_code, images, decode)


def _gpu_thumbs(items: list, size: int, device: torch.device) -> torch.Tensor:
    """Decode the JPEG bytes among `items` on the GPU (nvJPEG) and resize there; others are thumbnails."""
    from torchvision.io import ImageReadMode, decode_jpeg

    data = [torch.from_numpy(np.frombuffer(b, np.uint8).copy()) for b in items if isinstance(b, bytes)]
    decoded = iter(decode_jpeg(data, mode=ImageReadMode.RGB, device=device) if data else [])
    out = []
    for item in items:
        if isinstance(item, bytes):
            img = next(decoded)[None].float()
            img = nn.functional.interpolate(img, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
            out.append(img[0].clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0))
        else:
            out.append(torch.from_numpy(item).to(device))
    return torch.stack(out)


@contextmanager
def cpu_threads(n: int):
    """torch's intra-op threads limited to n meanwhile: on cores the decoders keep busy, more model threads
    only spin-wait and take CPU from decoding (measured: 0.69 -> 0.79 of the decode ceiling on 2 cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def embed_local(batches: list[Batch], rows: Rows, backbone: Backbone, p: FeatureParams, device: torch.device,
                pool: DecodePool, emit) -> None:
    """Workers decode the next batches, in small jobs, while this process embeds the current one."""
    gpu_decode = p.gpu_decode and device.type == "cuda"
    bf16 = use_bf16(p.precision, device)

    def jobs():
        for k, batch in enumerate(batches):
            for job in chunks(rows.specs(batch.rows)):
                yield k, job

    def embed(k: int, parts: list) -> None:
        if gpu_decode:
            images = _gpu_thumbs([item for part in parts for item in part], p.thumb_size, device)
        else:
            images = np.concatenate(parts)
        emit(batches[k], embed_thumbs(backbone, images, device, bf16))

    current, parts = 0, []
    # Two batches of jobs ahead: workers keep decoding while this process embeds (and waits for a core).
    ahead = 2 * -(-p.batch_size // DECODE_JOB_ROWS)
    model_threads = cpu_threads(torch.get_num_threads() - pool.workers) if device.type == "cpu" else nullcontext()
    with model_threads:
        for k, part in pool.imap_tagged(jpeg_bytes if gpu_decode else thumb_batch, jobs(), p.thumb_size, ahead=ahead):
            if k != current:
                embed(current, parts)
                current, parts = k, []
            parts.append(part)
        if parts:
            embed(current, parts)


def cached_labels(keys: np.ndarray, label_rows: Rows, p: FeatureParams, cache_dir: Path,
                  pool: DecodePool) -> tuple[np.ndarray, np.ndarray, int]:
    """Labels and label thumbnails of these rows; only rows whose content is not cached are decoded."""
    cache = UnitCache(cache_dir / f"labels-{value_hash(p.view, p.thumb_size, code_hash(*LABEL_CODE))}")
    _, first = np.unique(keys, return_index=True)
    todo = np.sort(first)[~cache.has(keys[np.sort(first)])]
    results = pool.imap(label_job, label_rows.specs(todo), p.thumb_size)
    with tqdm(total=len(todo), desc="extract: labels", unit="img") as bar:
        for s in range(0, len(todo), LABEL_UNIT_ROWS):
            rows = todo[s:s + LABEL_UNIT_ROWS]
            done = [next(results) for _ in rows]
            cache.write(keys[rows], labels=np.stack([d[0] for d in done]), thumb=np.stack([d[1] for d in done]))
            bar.update(len(rows))
    cache = UnitCache(cache.folder)
    return cache.get(keys, "labels"), cache.get(keys, "thumb"), len(todo)


def cached_backbone(p: FeatureParams, label_keys: np.ndarray, labels: np.ndarray, label_thumbs: np.ndarray,
                    cache_dir: Path) -> tuple[Backbone, list[float]]:
    """The backbone of params; a scratch backbone is trained once per training set and params, then cached."""
    if p.weights != "scratch":
        return create_backbone(p), []
    key = value_hash(p.result_params(), label_keys.tolist(), code_hash(*BACKBONE_CODE),
                     torch.__version__)
    folder = cache_dir / f"backbone-{key}"
    if (folder / "config.json").is_file():
        return load_backbone(folder), []
    backbone = create_backbone(p)
    losses = train_scratch(backbone, label_thumbs, labels, p)
    with atomic(folder) as tmp:
        backbone.save(tmp, p.weights)
    return backbone, losses


@dataclass(frozen=True)
class Summary:
    rows: int
    dim: int
    embedded: int  # rows decoded and embedded by this run (the rest came from the cache)
    labelled: int
    labels_computed: int
    losses: list[float]


def run_extract(index: pd.DataFrame, p: FeatureParams, out: Path, backbone_out: Path, cache_dir: Path) -> Summary:
    """Labels, backbone (saved to backbone_out) and embeddings of every index row into the store `out`."""
    keys = content_keys(index)
    sources = index_rows(index, p.view)
    with DecodePool(p.workers) as pool:
        rows = label_sample(index, p.label_samples, p.seed)
        labels, label_thumbs, computed = cached_labels(keys[rows], sources.take(rows), p, cache_dir, pool)
        backbone, losses = cached_backbone(p, keys[rows], labels, label_thumbs, cache_dir)
        with atomic(backbone_out) as tmp:
            backbone.save(tmp, p.weights)
        if p.engine == "ray":
            from tripled.features.ray_engine import embed_ray, ray_device  # Ray is an optional install

            device = ray_device(p)
        else:
            device = pick_device(p.device)
        gpu_decode = p.gpu_decode and device.type == "cuda" and p.engine == "local"  # Ray decodes on CPUs
        fp = fingerprint(backbone, code_hash(*EMBED_CODE), torch.__version__, timm.__version__,
                         PIL.__version__, device.type, p.view, gpu_decode, use_bf16(p.precision, device))
        cache = UnitCache(cache_dir / f"emb-{fp}")
        units, batches = plan(keys, cache, p.unit_rows, p.batch_size)
        with tqdm(total=sum(map(len, units)), desc=f"extract: embed ({p.engine})", unit="img") as bar:
            collect = UnitCollector(cache, units, bar)
            if p.engine == "ray":
                embed_ray(batches, sources, backbone, p, device, collect.add)
            else:
                backbone.model.to(device)
                embed_local(batches, sources, backbone, p, device, pool, collect.add)
    cache = UnitCache(cache.folder)
    dim = backbone.model.num_features

    def shard(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        lab = np.full((stop - start, len(LABELS)), np.nan, np.float32)
        i, j = np.searchsorted(rows, [start, stop])
        lab[rows[i:j] - start] = labels[i:j]
        return cache.get(keys[start:stop], "value"), lab

    attrs = dict(backbone=p.backbone, weights=p.weights, view=p.view, labels=list(LABELS), params=p.result_params(),
                 rows=len(index), device=device.type, fingerprint=fp)
    write_store(out, len(index), dim, attrs, shard)
    return Summary(len(index), dim, sum(map(len, units)), len(rows), computed, losses)
