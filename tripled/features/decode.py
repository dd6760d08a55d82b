"""Decoding for extraction, run in worker processes: thumbnails (reduced decode) and full-resolution labels."""
from __future__ import annotations

import ctypes
import multiprocessing
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tripled.data.images import crop, read_image_cached, read_thumbnail, resize
from tripled.device import available_cores
from tripled.features.complexity import complexity_labels

PR_SET_PDEATHSIG = 1
DECODE_JOB_ROWS = 8  # rows per decode job: an inference batch spreads over all workers


@dataclass(frozen=True)
class Spec:
    """What a worker needs to decode one index row: the file and the box of the sample in it."""

    path: str
    box: tuple[int, int, int, int]
    whole: bool  # the box is the whole image: a JPEG can then decode reduced


@dataclass(frozen=True)
class Rows:
    """The decode inputs of all index rows as arrays: a few bytes per row, Specs made per batch."""

    path: np.ndarray  # object: the index's own strings
    box: np.ndarray  # N x 4 (x, y, w, h)
    whole: np.ndarray

    def take(self, rows: np.ndarray) -> "Rows":
        return Rows(self.path[rows], self.box[rows], self.whole[rows])

    def specs(self, rows: Iterable[int]) -> list[Spec]:
        return [Spec(self.path[i], tuple(int(v) for v in self.box[i]), bool(self.whole[i])) for i in rows]


def index_rows(index: pd.DataFrame, view: str) -> Rows:
    box = index[["x", "y", "w", "h"]].to_numpy(np.int64)
    whole = (box[:, 0] == 0) & (box[:, 1] == 0) & (box[:, 2] == index["width"].to_numpy()) & \
        (box[:, 3] == index["height"].to_numpy())
    return Rows(index["gt_path" if view == "gt" else "lq_path"].to_numpy(object), box, whole)


def chunks(batch: list[Spec], rows: int = DECODE_JOB_ROWS) -> list[list[Spec]]:
    """Decode jobs of about `rows` rows each (balanced workers), never splitting the tiles of one file."""
    out: list[list[Spec]] = []
    for s in batch:
        if out and (len(out[-1]) < rows or s.path == out[-1][-1].path):
            out[-1].append(s)
        else:
            out.append([s])
    return out


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


def _die_with_parent() -> None:
    """Worker initializer: a kill -9 of the stage must not leave its decoders waiting forever (Linux)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def default_workers(workers: int) -> int:
    return workers or available_cores()


class DecodePool:
    """Worker processes that decode in parallel, with a bounded number of jobs in flight (flat memory)."""

    def __init__(self, workers: int):
        self.workers = default_workers(workers)
        # fork: workers start in milliseconds (spawn would re-import torch in each); fork them all now, before
        # this process starts torch's threads.
        self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("fork"),
                                         initializer=_die_with_parent)
        self._pool.submit(int).result()

    def imap(self, fn: Callable, items: Iterable, *args) -> Iterator:
        """fn(item, *args) for every item, results in order; at most 2 jobs per worker wait or run."""
        return (result for _, result in self.imap_tagged(fn, ((None, item) for item in items), *args))

    def imap_tagged(self, fn: Callable, tagged: Iterable[tuple], *args, ahead: int = 0) -> Iterator[tuple]:
        """(tag, fn(item, *args)) for every (tag, item), in order, as imap, with `ahead` more jobs in flight."""
        pending: deque = deque()
        for tag, item in tagged:
            pending.append((tag, self._pool.submit(fn, item, *args)))
            if len(pending) >= 2 * self.workers + ahead:
                tag, future = pending.popleft()
                yield tag, future.result()
        while pending:
            tag, future = pending.popleft()
            yield tag, future.result()

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)

    def __enter__(self) -> "DecodePool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
