"""The evaluate stage: PSNR/SSIM of the restored and of the degraded test images, per task."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from tripled.data.index import read_sample
from tripled.evaluation.metrics import mse, psnr_from_mse, ssim, to_tensor
from tripled.evaluation.restore import restore

METRICS = ("psnr_input", "psnr", "ssim_input", "ssim")
BATCH_PIXELS = 1 << 18  # samples of one size restored together: 64 tiles of 64 px, 16 of 128 px


def batches(test: pd.DataFrame, pixels: int) -> list[list]:
    """The rows in order, cut into runs of samples of one size of at most `pixels` in all (a larger
    sample goes alone): a run of tiles is restored as one batch."""
    out: list[list] = []
    for r in test.itertuples():
        last = out[-1] if out else None
        if last and (r.h, r.w) == (last[0].h, last[0].w) and (len(last) + 1) * r.h * r.w <= pixels:
            last.append(r)
        else:
            out.append([r])
    return out


def read_pair(row) -> tuple[np.ndarray, np.ndarray]:
    """The (clean, degraded) images of an index row."""
    return read_sample(row, "gt"), read_sample(row, "lq")


@torch.no_grad()
def evaluate(model: torch.nn.Module, test: pd.DataFrame, tile: int = 0, overlap: int = 0,
             device: torch.device = torch.device("cpu"), progress: bool = True,
             pair: Callable[[object], tuple[np.ndarray, np.ndarray]] = read_pair) -> pd.DataFrame:
    """Per-sample squared error and SSIM of the restored output and of the degraded input; `pair(row)`
    gives a row's (clean, degraded) images (default: the index's files)."""
    rows = []
    model = model.to(device)
    with tqdm(total=len(test), desc="evaluate", unit="img", disable=not progress) as bar:
        for run in batches(test, BATCH_PIXELS):
            pairs = [pair(r) for r in run]
            gt, lq = (torch.cat([to_tensor(images[side]) for images in pairs]) for side in (0, 1))
            out = restore(model, lq, tile, overlap, device).clamp(0, 1)
            scores = zip(mse(lq, gt).tolist(), mse(out, gt).tolist(), ssim(lq, gt).tolist(), ssim(out, gt).tolist())
            for r, (mse_input, mse_out, ssim_input, ssim_out) in zip(run, scores):
                rows.append(dict(id=r.id, task=r.task, source=r.source, mse_input=mse_input, mse=mse_out,
                                 ssim_input=ssim_input, ssim=ssim_out))
            bar.update(len(run))
    return pd.DataFrame(rows)


def _per_task(rows: pd.DataFrame, per_task: int, seed: int) -> pd.DataFrame:
    parts = [g.sample(n=min(per_task, len(g)), random_state=seed) for _, g in rows.groupby("task")]
    return pd.concat(parts).sort_values("id", kind="stable") if parts else rows


def held_out(index: pd.DataFrame, per_task: int, seed: int) -> pd.DataFrame:
    """Up to `per_task` test rows of every task, drawn at random for `seed`: a quick validation set."""
    test = index[index["split"] == "test"]
    if test.empty:
        raise ValueError("no test rows for the PSNR curve: data.test_fraction is 0")
    return _per_task(test, per_task, seed)


def left_out(index: pd.DataFrame, kept: pd.Series, per_task: int, seed: int) -> pd.DataFrame:
    """Up to `per_task` training rows of every task that the distilled set (ids `kept`) left out: a
    validation set that never touches the test split (empty for the full set)."""
    rest = index[(index["split"] == "train") & ~index["id"].isin(kept)]
    return _per_task(rest, per_task, seed)


def summarise(per_sample: pd.DataFrame) -> dict:
    """PSNR per test image (from the squared error over all its tiles, as benchmarks score whole
    images), SSIM averaged over its tiles; then means per task and over tasks."""
    images = per_sample.groupby(["task", "source"])[["mse_input", "mse", "ssim_input", "ssim"]].mean()
    for err, db in (("mse_input", "psnr_input"), ("mse", "psnr")):
        images[db] = psnr_from_mse(torch.tensor(images[err].to_numpy())).numpy()
    tasks = images.groupby("task")[list(METRICS)].mean()

    def block(s: pd.Series) -> dict:
        d = {k: round(float(s[k]), 4) for k in METRICS}
        d["psnr_gain"] = round(d["psnr"] - d["psnr_input"], 4)
        return d

    return dict(overall=block(tasks.mean()), tasks={t: block(s) for t, s in tasks.iterrows()},
                images=int(len(images)), samples=int(len(per_sample)))


def complexity_histogram(scores: pd.DataFrame, subset_ids: pd.Series, bins: int = 30) -> pd.DataFrame:
    """Histogram of predicted complexity over the training set, with the selected samples marked."""
    train = scores[scores["split"] == "train"]
    edges = np.histogram_bin_edges(train["complexity"], bins=bins)
    all_counts, _ = np.histogram(train["complexity"], edges)
    sel_counts, _ = np.histogram(train.loc[train["id"].isin(subset_ids), "complexity"], edges)
    centres = (edges[:-1] + edges[1:]) / 2
    return pd.DataFrame(dict(complexity=np.round(centres, 4), all=all_counts, selected=sel_counts))
