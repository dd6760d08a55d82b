"""Decoding for extraction, run in worker processes: thumbnails (reduced decode) and full-resolution labels."""
from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tripled.complexity import complexity_labels
from tripled.io import crop, read_image_cached, read_thumbnail, resize, row_box, sample_path


@dataclass(frozen=True)
class Spec:
    """What a worker needs to decode one index row: the file and the box of the sample in it."""

    path: str
    box: tuple[int, int, int, int]
    whole: bool  # the box is the whole image: a JPEG can then decode reduced


def specs(index: pd.DataFrame, view: str) -> list[Spec]:
    return [Spec(sample_path(r, view), row_box(r), row_box(r) == (0, 0, int(r.width), int(r.height)))
            for r in index.itertuples()]


def thumbnail(spec: Spec, size: int) -> np.ndarray:
    """size x size RGB thumbnail; whole JPEGs decode reduced, tiles crop the (cached) full decode."""
    if spec.whole:
        return read_thumbnail(spec.path, size)
    return resize(crop(read_image_cached(spec.path), spec.box), size)


def thumb_batch(batch: list[Spec], size: int) -> np.ndarray:
    return np.stack([thumbnail(s, size) for s in batch])


def label_job(spec: Spec, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Complexity labels at full resolution and the thumbnail of the same decode (for scratch training)."""
    full = crop(read_image_cached(spec.path), spec.box)
    return complexity_labels(full), resize(full, size)


def jpeg_bytes(batch: list[Spec], size: int) -> list[bytes | np.ndarray]:
    """For GPU decoding: the file bytes of whole JPEGs, a CPU thumbnail of anything else."""
    out: list[bytes | np.ndarray] = []
    for s in batch:
        if s.whole and s.path.lower().endswith((".jpg", ".jpeg")):
            with open(s.path, "rb") as f:
                out.append(f.read())
        else:
            out.append(thumbnail(s, size))
    return out


def default_workers(workers: int) -> int:
    return workers or len(os.sched_getaffinity(0))


class DecodePool:
    """Worker processes that decode in parallel, with a bounded number of jobs in flight (flat memory)."""

    def __init__(self, workers: int):
        self.workers = default_workers(workers)
        # fork: workers start in milliseconds (spawn would re-import torch in each); fork them all now, before
        # this process starts torch's threads.
        self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("fork"))
        self._pool.submit(int).result()

    def imap(self, fn: Callable, items: Iterable, *args) -> Iterator:
        """fn(item, *args) for every item, results in order; at most 2 jobs per worker wait or run."""
        pending: deque = deque()
        for item in items:
            pending.append(self._pool.submit(fn, item, *args))
            if len(pending) >= 2 * self.workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)

    def __enter__(self) -> "DecodePool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
