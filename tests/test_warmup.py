"""The warmup stage: a small proxy restorer's per-sample loss, for the `loss` baseline only."""
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.helpers import smooth_images
from tripled.errors import ParamsError
from tripled.params import load_section
from tripled.selection.warmup import WarmupParams, warmup_loss


def _pairs_index(tmp_path, n=12, size=32):
    """Tiles of two tasks: t0 lightly, t1 heavily noised; every third one held out."""
    rng = np.random.default_rng(0)
    rows = []
    for i, gt in enumerate(smooth_images(n, size)):
        sigma = 5 if i % 2 == 0 else 40
        lq = np.clip(gt + rng.normal(0, sigma, gt.shape), 0, 255).astype(np.uint8)
        Image.fromarray(gt).save(tmp_path / f"gt{i}.png")
        Image.fromarray(lq).save(tmp_path / f"lq{i}.png")
        rows.append(dict(id=f"t{i % 2}/{i:02d}", task=f"t{i % 2}", source=f"s{i}",
                         split="test" if i % 3 == 2 else "train",
                         gt_path=str(tmp_path / f"gt{i}.png"), lq_path=str(tmp_path / f"lq{i}.png"),
                         x=0, y=0, w=size, h=size))
    return pd.DataFrame(rows)


TINY = dict(kwargs=dict(width=8, enc_blk_nums=[1], dec_blk_nums=[1]), batch_size=4, crop=16)


def test_warmup_loss_per_training_sample(tmp_path):
    index = _pairs_index(tmp_path)
    p = WarmupParams(steps=5, share=0.5, seed=1, **TINY)
    out = warmup_loss(index, p)
    assert list(out["id"]) == list(index["id"])
    loss = out["loss"].to_numpy()
    train = (index["split"] == "train").to_numpy()
    assert np.isnan(loss[~train]).all() and np.isfinite(loss[train]).all() and (loss[train] > 0).all()
    heavy = (index["task"] == "t1").to_numpy()
    assert loss[train & heavy].mean() > 2 * loss[train & ~heavy].mean()  # more noise, more error
    given = out["input_loss"].to_numpy()
    assert np.isnan(given[~train]).all()
    for k in np.flatnonzero(train)[:3]:  # the degraded side's L1 to the clean side, in 0..1
        r = index.iloc[k]
        gt, lq = (np.asarray(Image.open(r[f"{side}_path"]), np.float32) / 255 for side in ("gt", "lq"))
        assert given[k] == pytest.approx(np.abs(lq - gt).mean(), rel=1e-4)
    assert given[train & heavy].mean() > 2 * given[train & ~heavy].mean()
    np.testing.assert_array_equal(loss, warmup_loss(index, p)["loss"])  # deterministic per seed
    assert not np.array_equal(loss, warmup_loss(index, p.model_copy(update=dict(seed=2)))["loss"])


def test_warmup_off_trains_nothing(tmp_path):
    out = warmup_loss(_pairs_index(tmp_path), WarmupParams(steps=0))
    assert out[["loss", "input_loss"]].isna().all().all()


def test_unknown_proxy_arch_is_refused(tmp_path):
    (tmp_path / "params.yaml").write_text("warmup: {arch: unet}\n")
    with pytest.raises(ParamsError, match="warmup.arch: unknown arch 'unet'"):
        load_section(WarmupParams, "warmup", tmp_path / "params.yaml")
