"""A content-addressed cache of per-row results (embeddings, labels), written in atomic unit files.

Rows are keyed by the index's content hash (16 hex digits = a uint64). Each unit file holds the keys and
values of a group of rows and appears only once complete (tripled.publish), so a run killed at any point
loses at most the units in flight; the next run computes only missing keys.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from tripled.publish import atomic


def content_keys(index: pd.DataFrame) -> np.ndarray:
    """uint64 keys of the rows' content hashes (column 'hash' of the index)."""
    try:
        return np.array([int(h, 16) for h in index["hash"]], dtype=np.uint64)
    except (KeyError, ValueError, TypeError):
        raise ValueError("index: column 'hash' must hold 16-digit hex content hashes (run the prepare stage)") \
            from None


class UnitCache:
    """The unit files of one folder, as they were when opened: `has` and `get` look rows up by key."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        for tmp in self.folder.glob(".*.partial"):  # left by a killed writer
            tmp.unlink()
        self._files = sorted(self.folder.glob("*.npz"))
        keys, file_ids, rows = [np.zeros(0, np.uint64)], [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        for i, f in enumerate(self._files):
            with np.load(f) as z:
                k = z["key"]
            keys.append(k)
            file_ids.append(np.full(len(k), i))
            rows.append(np.arange(len(k)))
        keys_all = np.concatenate(keys)
        order = np.argsort(keys_all, kind="stable")
        self._keys = keys_all[order]
        self._file, self._row = np.concatenate(file_ids)[order], np.concatenate(rows)[order]
        self._load = lru_cache(maxsize=4)(self._load_file)

    def __len__(self) -> int:
        return len(self._keys)

    def _find(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pos = np.clip(np.searchsorted(self._keys, keys), 0, max(len(self._keys) - 1, 0))
        found = (self._keys[pos] == keys) if len(self._keys) else np.zeros(len(keys), bool)
        return pos, found

    def has(self, keys: np.ndarray) -> np.ndarray:
        return self._find(keys)[1]

    def _load_file(self, i: int) -> dict[str, np.ndarray]:
        with np.load(self._files[i]) as z:
            return {k: z[k] for k in z.files}

    def get(self, keys: np.ndarray, name: str) -> np.ndarray:
        """Values `name` of these keys, in their order; KeyError if one is missing."""
        pos, found = self._find(keys)
        if not found.all():
            raise KeyError(f"{(~found).sum()} keys not in the cache {self.folder}")
        file, row = self._file[pos], self._row[pos]
        out = None
        for i in np.unique(file):
            sel = file == i
            values = self._load(int(i))[name]
            if out is None:
                out = np.empty((len(keys),) + values.shape[1:], values.dtype)
            out[sel] = values[row[sel]]
        return out

    def write(self, keys: np.ndarray, **values: np.ndarray) -> Path:
        """One unit, named by its keys; visible to the next UnitCache of this folder once complete."""
        keys = np.asarray(keys, np.uint64)
        path = self.folder / f"{hashlib.sha256(keys.tobytes()).hexdigest()[:20]}.npz"
        with atomic(path) as tmp, open(tmp, "wb") as f:  # a file object: np.savez would add .npz to a name
            np.savez(f, key=keys, **values)
        return path
