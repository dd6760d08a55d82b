"""Planning the embedding work: fixed batches of the rows not yet cached, grouped into cache units, and
collecting embedded batches (which may arrive in any order) back into whole units."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from tripled.features.cache import UnitCache
from tripled.features.decode import DECODE_JOB_ROWS


@dataclass(frozen=True)
class Batch:
    """A fixed group of index rows to embed together: rows [start, start + len(rows)) of cache unit `unit`."""

    unit: int
    start: int
    rows: np.ndarray


def plan(keys: np.ndarray, cache: UnitCache, unit_rows: int, batch_size: int) -> tuple[list[np.ndarray], list[Batch]]:
    """Units (keys) and batches of the rows not in the cache, in index order, each distinct content once."""
    _, first = np.unique(keys, return_index=True)
    first = np.sort(first)
    todo = first[~cache.has(keys[first])]
    units, batches = [], []
    for u, s in enumerate(range(0, len(todo), unit_rows)):
        rows = todo[s:s + unit_rows]
        units.append(keys[rows])
        batches += [Batch(u, b, rows[b:b + batch_size]) for b in range(0, len(rows), batch_size)]
    if batches:  # nothing is left to decode while the last batch is embedded: make it small
        last = batches.pop()
        batches += [Batch(last.unit, last.start + b, last.rows[b:b + DECODE_JOB_ROWS])
                    for b in range(0, len(last.rows), DECODE_JOB_ROWS)]
    return units, batches


@dataclass
class UnitCollector:
    """Embedded batches arrive in any order; a unit goes to the cache once all its rows are in."""

    cache: UnitCache
    units: list[np.ndarray]
    bar: tqdm
    _parts: dict[int, dict[int, np.ndarray]] = field(default_factory=dict)

    def add(self, batch: Batch, emb: np.ndarray) -> None:
        parts = self._parts.setdefault(batch.unit, {})
        parts[batch.start] = emb
        self.bar.update(len(emb))
        if sum(len(e) for e in parts.values()) == len(self.units[batch.unit]):
            self.cache.write(self.units[batch.unit], value=np.concatenate([parts[s] for s in sorted(parts)]))
            del self._parts[batch.unit]
