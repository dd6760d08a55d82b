"""Scoring: ridge-head ensemble (complexity + uncertainty) and feature clustering."""
import numpy as np
import pandas as pd
import pytest

from tripled.features.complexity import combine
from tripled.selection.scoring import ScoreParams, cluster, fit_heads, score

D = 16


def _linear_problem(n=600, n_labelled=200, seed=0, noise=0.1):
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, D)).astype(np.float32)
    w = rng.normal(size=D)
    truth = emb @ w + noise * rng.normal(size=n)
    target = np.full(n, np.nan)
    labelled = rng.choice(n, n_labelled, replace=False)
    target[labelled] = truth[labelled]
    return emb, truth, target


def test_fit_heads_shape_and_accuracy_on_unlabelled_rows():
    emb, truth, target = _linear_problem()
    p = ScoreParams(heads=6, alpha=1.0, seed=0)
    preds = fit_heads(emb, target, p)
    assert preds.shape == (6, len(emb))
    assert preds.dtype == np.float32
    unlabelled = np.isnan(target)
    r = np.corrcoef(preds.mean(0)[unlabelled], truth[unlabelled])[0, 1]
    assert r > 0.9


def test_fit_heads_deterministic_per_seed():
    emb, _, target = _linear_problem()
    a = fit_heads(emb, target, ScoreParams(heads=4, seed=3))
    b = fit_heads(emb, target, ScoreParams(heads=4, seed=3))
    c = fit_heads(emb, target, ScoreParams(heads=4, seed=4))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_uncertainty_higher_far_outside_labelled_distribution():
    emb, _, target = _linear_problem(n=400, n_labelled=150, noise=0.5, seed=1)
    rng = np.random.default_rng(11)
    far = rng.normal(size=(100, D)).astype(np.float32) * 10 + 5  # far out, unlabelled
    emb_all = np.concatenate([emb, far])
    target_all = np.concatenate([target, np.full(len(far), np.nan)])
    preds = fit_heads(emb_all, target_all, ScoreParams(heads=8, seed=0))
    unc = preds.std(0)
    inside = unc[:len(emb)][np.isnan(target)]
    outside = unc[len(emb):]
    assert outside.mean() > 3 * inside.mean()
    assert np.median(outside) > np.percentile(inside, 90)


@pytest.mark.parametrize("n_labelled", [0, 1])
def test_fit_heads_needs_two_labelled_rows(n_labelled):
    emb, _, _ = _linear_problem(n=20, n_labelled=5)
    target = np.full(20, np.nan)
    target[:n_labelled] = 1.0
    with pytest.raises(ValueError, match="fewer than 2 labelled"):
        fit_heads(emb, target, ScoreParams())


def test_fit_heads_two_labelled_rows_is_enough():
    emb, _, _ = _linear_problem(n=20, n_labelled=5)
    target = np.full(20, np.nan)
    target[:2] = [0.0, 1.0]
    preds = fit_heads(emb, target, ScoreParams(heads=2))
    assert np.isfinite(preds).all()


def test_cluster_deterministic_per_seed_and_k():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, D)) * 5
    emb = (centres[rng.integers(0, 5, 300)] + rng.normal(size=(300, D))).astype(np.float32)
    p = ScoreParams(clusters=5, seed=7)
    a, b = cluster(emb, p), cluster(emb, p)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.int32 and a.shape == (300,)
    assert set(np.unique(a)) == set(range(5))


def test_cluster_count_capped_by_rows():
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(3, D)).astype(np.float32)
    labels = cluster(emb, ScoreParams(clusters=8))
    assert labels.shape == (3,)
    assert len(np.unique(labels)) == 3


def _index(n, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(dict(id=[f"s{i:04d}" for i in range(n)],
                             task=rng.choice(["denoise", "deblur"], n),
                             source=rng.integers(0, 10, n),
                             split=rng.choice(["train", "test"], n, p=[0.8, 0.2])))


@pytest.mark.parametrize("label", ["combined", "gradient"])
def test_score_columns_and_alignment(label):
    n = 120
    rng = np.random.default_rng(5)
    emb = rng.normal(size=(n, D)).astype(np.float32)
    labels = np.full((n, 3), np.nan)
    labelled = rng.choice(n, 40, replace=False)
    labels[labelled] = rng.normal(size=(40, 3))
    # a non-default (shuffled, gappy) DataFrame index must not break positional alignment
    index = _index(n).set_axis(rng.permutation(n) * 3 + 1)
    p = ScoreParams(label=label, heads=4, clusters=4)
    out = score(index, emb, labels, p)
    assert list(out.columns) == ["id", "task", "source", "split", "label", "complexity", "uncertainty", "gradient",
                                 "cluster"]
    assert len(out) == n
    for col in ["id", "task", "source", "split"]:
        assert out[col].tolist() == index[col].tolist()
    target = combine(labels, label)
    np.testing.assert_allclose(out["label"].to_numpy(), target.astype(np.float32), equal_nan=True)
    assert out["label"].isna().sum() == n - 40
    preds = fit_heads(emb, target, p)
    np.testing.assert_allclose(out["complexity"].to_numpy(), preds.mean(0), rtol=1e-6)
    np.testing.assert_allclose(out["uncertainty"].to_numpy(), preds.std(0), rtol=1e-6)
    np.testing.assert_array_equal(out["cluster"].to_numpy(), cluster(emb, p))
    assert out[["complexity", "uncertainty", "gradient", "cluster"]].notna().all().all()
    np.testing.assert_allclose(out["gradient"].to_numpy(), fit_heads(emb, combine(labels, "gradient"), p).mean(0),
                               rtol=1e-6)
