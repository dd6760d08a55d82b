"""The distilled set on disk: uint8 pairs in a chunked zarr store plus a manifest.

Each image is one zarr array, chunked so that a random crop of a 4K image reads only the chunks it
covers, and sharded as a whole so that it is a single file.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import zarr

from tripled.data.store import open_store
from tripled.errors import StoreError
from tripled.publish import publish, staging_path

CHUNK = 256
MANIFEST_COLUMNS = ["key", "id", "task", "stage", "weight", "height", "width"]


class DistilledWriter:
    """Writes into a hidden sibling folder that replaces `folder` in close(): a run killed midway
    leaves the previous set (or none), never a partial one that reads as complete."""

    def __init__(self, folder: Path, attrs: dict):
        self.folder = Path(folder)
        self.staged = staging_path(self.folder)
        self.staged.mkdir()
        self.group = zarr.open_group(self.staged / "images.zarr", mode="w")
        self.group.attrs.update(attrs)
        self.rows: list[dict] = []

    def add(self, meta: dict, gt: np.ndarray, lq: np.ndarray) -> None:
        key = f"{len(self.rows):06d}"
        h, w = gt.shape[:2]
        chunks = (min(CHUNK, h), min(CHUNK, w), 3)
        shard = (-(-h // chunks[0]) * chunks[0], -(-w // chunks[1]) * chunks[1], 3)  # whole image, whole chunks
        for name, img in (("gt", gt), ("lq", lq)):
            arr = self.group.create_array(f"{key}/{name}", shape=img.shape, dtype="uint8", chunks=chunks,
                                          shards=shard)
            arr[:] = img
        self.rows.append(dict(meta, key=key, height=h, width=w))

    def close(self, finish: Callable[[Path, pd.DataFrame], None] | None = None) -> pd.DataFrame:
        """Write the manifest, let `finish(folder, manifest)` add files (the card), then publish the set."""
        manifest = pd.DataFrame(self.rows, columns=MANIFEST_COLUMNS)
        manifest.to_parquet(self.staged / "manifest.parquet", index=False)
        if finish is not None:
            finish(self.staged, manifest)
        publish(self.staged, self.folder)
        return manifest


class DistilledSet:
    """Read side: manifest rows and (crops of) their images.

    A set whose pairs take at most `memory_limit` bytes is read into memory once: small sets then
    cost no I/O per training step; larger ones are read crop by crop, chunk by chunk.
    """

    def __init__(self, folder: Path, memory_limit: int = 0):
        self.folder = Path(folder)
        if not (self.folder / "manifest.parquet").is_file():
            raise StoreError(f"{self.folder}: not a complete distilled set (no manifest.parquet); "
                             "the run that wrote it did not finish: rerun the refine stage")
        self.manifest = pd.read_parquet(self.folder / "manifest.parquet")
        if list(self.manifest.columns) != MANIFEST_COLUMNS:
            raise StoreError(f"{self.folder}/manifest.parquet: columns {list(self.manifest.columns)}, "
                             f"expected {MANIFEST_COLUMNS}")
        self.group = open_store(self.folder / "images.zarr")
        # Keys name arrays of this store, nothing else, of the size the manifest says: a set from a
        # remote can neither point elsewhere nor make a reader allocate more than the manifest admits.
        self._arrays: dict[tuple[int, str], zarr.Array] = {}  # opened once: a crop then reads no metadata
        for i, (key, h, w) in enumerate(self.manifest[["key", "height", "width"]].itertuples(index=False)):
            if not (isinstance(key, str) and key.isdigit() and key in self.group):
                raise StoreError(f"{self.folder}/manifest.parquet: key {key!r} is not a sample of this store")
            for name in ("gt", "lq"):
                arr = self.group.get(f"{key}/{name}")
                if not isinstance(arr, zarr.Array) or arr.shape != (h, w, 3) or arr.dtype != np.uint8:
                    raise StoreError(f"{self.folder}: {key}/{name} is not a {h}x{w}x3 uint8 image as the manifest says")
                self._arrays[i, name] = arr
        self.attrs = dict(self.group.attrs)
        self._pairs = None
        if int((self.manifest["height"] * self.manifest["width"]).sum()) * 6 <= memory_limit:
            self._pairs = [self.pair(i) for i in range(len(self))]

    def __len__(self) -> int:
        return len(self.manifest)

    def _array(self, i: int, name: str) -> zarr.Array:
        return self._arrays[i, name]

    def pair(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if self._pairs is not None:
            return self._pairs[i]
        return self._array(i, "gt")[:], self._array(i, "lq")[:]

    def crop(self, i: int, y: int, x: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        sl = (slice(y, y + size), slice(x, x + size))
        if self._pairs is not None:
            gt, lq = self._pairs[i]
            return gt[sl], lq[sl]
        return self._array(i, "gt")[sl], self._array(i, "lq")[sl]
