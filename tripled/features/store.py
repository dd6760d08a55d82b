"""The feature store data/features.zarr: one row per index row (ViT embedding, complexity labels),
zarr v3, sharded so that a million rows are a few dozen files, written one whole shard at a time."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import zarr

from tripled.data.store import open_store
from tripled.errors import StoreError
from tripled.features.complexity import LABELS
from tripled.publish import atomic

SHARD_ROWS = 32768  # rows per zarr shard (one file per array): 1 M rows -> 31 files per array
STORE_CHUNK_ROWS = 1024


def create_store(path: Path, n: int, dim: int, attrs: dict) -> zarr.Group:
    group = zarr.open_group(path, mode="w")
    chunk = (min(STORE_CHUNK_ROWS, max(n, 1)),)
    shard = (min(SHARD_ROWS, -(-max(n, 1) // chunk[0]) * chunk[0]),)  # a whole number of chunks
    group.create_array("embedding", shape=(n, dim), chunks=chunk + (dim,), shards=shard + (dim,),
                       dtype="float16", fill_value=0)
    group.create_array("labels", shape=(n, len(LABELS)), chunks=chunk + (len(LABELS),),
                       shards=shard + (len(LABELS),), dtype="float32", fill_value=float("nan"))
    group.attrs.update(attrs)
    return group


def write_store(path: Path, n: int, dim: int, attrs: dict,
                rows: Callable[[int, int], tuple[np.ndarray, np.ndarray]]) -> None:
    """The store, one whole shard at a time from rows(start, stop) -> (embeddings, labels), published whole
    and marked complete last (a store copied in part lacks the mark and is refused by read_features).

    Peak memory is one shard, whatever n.
    """
    with atomic(path) as staged:
        group = create_store(staged, n, dim, {k: v for k, v in attrs.items() if k != "complete"})
        emb, labels = group["embedding"], group["labels"]
        shard = emb.shards[0]
        for start in range(0, n, shard):
            stop = min(start + shard, n)
            emb[start:stop], labels[start:stop] = rows(start, stop)
        group.attrs["complete"] = True


class IncompleteStoreError(StoreError):
    """A feature store without its completion mark."""


def read_features(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    group = open_store(path)
    if group.attrs.get("complete") is not True:
        raise IncompleteStoreError(f"{path}: incomplete feature store (extract did not finish writing it); "
                                   "rerun extract")
    return group["embedding"][:].astype(np.float32), group["labels"][:], dict(group.attrs)


def normalise(emb: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length: features are compared by direction (clusters, coverage)."""
    return emb / (np.linalg.norm(emb, axis=1, keepdims=True) + 1e-8)
