"""Subset selection: budget arithmetic, TripleD's distribution-aware selection and the baselines."""
import numpy as np
import pandas as pd
import pytest

from tripled.selection.methods import (
    FEATURE_METHODS,
    METHODS,
    SUBSET_COLUMNS,
    SelectParams,
    apportion,
    assign_stages,
    budget,
    difficulty,
    select,
    task_budgets,
)

N_CLUSTERS, N_SOURCES, DIM = 6, 40, 8


def make_scores(task_sizes=(400, 400, 400), seed=0, test_fraction=0.2) -> pd.DataFrame:
    """Synthetic scores table. Complexity has a strong per-source component (tiles of one image look
    alike), so the highest-complexity rows come from only a few source images."""
    rng = np.random.default_rng(seed)
    source_level = rng.normal(size=N_SOURCES) * 3
    frames = []
    for t, n in enumerate(task_sizes):
        source = rng.integers(0, N_SOURCES, n)
        complexity = source_level[source] + rng.normal(size=n)
        label = np.where(rng.random(n) < 0.3, complexity + 0.1 * rng.normal(size=n), np.nan)
        frames.append(pd.DataFrame(dict(
            id=[f"t{t}_{i:04d}" for i in range(n)], task=f"task{t}", source=source.astype(str),
            split=np.where(rng.random(n) < test_fraction, "test", "train"), label=label.astype(np.float32),
            complexity=complexity.astype(np.float32),
            uncertainty=np.abs(rng.normal(size=n)).astype(np.float32),
            gradient=(0.5 * complexity + rng.normal(size=n)).astype(np.float32),
            loss=((t + 1) * np.exp(0.3 * rng.normal(size=n))).astype(np.float32),  # tasks differ in scale
            cluster=rng.integers(0, N_CLUSTERS, n).astype(np.int32))))
    # shuffle rows so tasks are interleaved, as nothing should depend on the order
    return pd.concat(frames).sample(frac=1.0, random_state=seed).reset_index(drop=True)


def make_features(scores: pd.DataFrame, seed=0) -> np.ndarray:
    """Features aligned to the rows of `scores`: a few blobs of very unequal size."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(5, DIM)) * 4
    blob = rng.choice(5, size=len(scores), p=[0.6, 0.2, 0.1, 0.07, 0.03])
    return (centres[blob] + rng.normal(size=(len(scores), DIM))).astype(np.float32)


@pytest.fixture(scope="module")
def scores():
    return make_scores()


@pytest.fixture(scope="module")
def emb(scores):
    return make_features(scores)


@pytest.fixture(scope="module")
def train(scores):
    return scores[scores["split"] == "train"].reset_index(drop=True)


# --------------------------------------------------------------------------- budget / apportion


def test_budget_fraction():
    assert budget(1000, 0.02) == 20
    assert budget(1000, 0.5) == 500
    assert budget(1000, 1.0) == 1000
    assert budget(999, 0.5) == round(0.5 * 999)


def test_budget_absolute_count():
    assert budget(1000, 25.0) == 25
    assert budget(1000, 2) == 2
    assert budget(1000, 1000.0) == 1000


def test_budget_too_many_raises():
    with pytest.raises(ValueError, match="only 10 training samples"):
        budget(10, 11.0)


def test_budget_minimum_one():
    assert budget(10, 0.001) == 1
    assert budget(1, 0.3) == 1
    with pytest.raises(ValueError):
        budget(0, 0.5)  # no samples at all: cannot keep the minimum of one


@pytest.mark.parametrize("sizes,k", [([10, 20, 30], 6), ([5, 5, 5], 7), ([1, 1, 100], 50), ([3, 100], 103),
                                     ([7], 3), ([2, 3, 4, 5], 0), ([13, 1, 29, 8, 50], 41)])
def test_apportion_sums_caps_and_proportional(sizes, k):
    sizes = np.array(sizes)
    out = apportion(sizes, k)
    assert out.sum() == k
    assert (out >= 0).all() and (out <= sizes).all()
    quota = k * sizes / sizes.sum()
    assert (np.abs(out - quota) < 1 + 1e-9).all()


def test_apportion_exact_when_divisible():
    np.testing.assert_array_equal(apportion(np.array([100, 200, 300]), 60), [10, 20, 30])


def test_apportion_random_cases():
    rng = np.random.default_rng(0)
    for _ in range(200):
        sizes = rng.integers(1, 50, rng.integers(1, 10))
        k = int(rng.integers(0, sizes.sum() + 1))
        out = apportion(sizes, k)
        assert out.sum() == k and (out <= sizes).all() and (out >= 0).all()
        assert (np.abs(out - k * sizes / sizes.sum()) < 1 + 1e-9).all()


# --------------------------------------------------------------------------- common contract of every method


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("ratio", [0.05, 0.2])
def test_select_contract(scores, emb, train, method, ratio):
    p = SelectParams(method=method, ratio=ratio, seed=1)
    out = select(scores, p, emb)
    assert list(out.columns) == SUBSET_COLUMNS
    expected = len(train) if method == "full" else budget(len(train), ratio)
    assert len(out) == expected
    assert out["id"].is_unique
    assert set(out["id"]) <= set(train["id"])
    if method == "full":
        assert set(out["id"]) == set(train["id"])
    assert set(out["stage"].unique()) <= {1, 2}
    assert out["weight"].mean() == pytest.approx(1.0, abs=1e-5)
    assert (out["weight"] > 0).all()
    assert out["id"].is_monotonic_increasing
    # deterministic for a fixed seed
    pd.testing.assert_frame_equal(out, select(scores, p, emb))


@pytest.mark.parametrize("method", sorted(m for m in METHODS if m != "full"))
def test_select_absolute_count(scores, emb, method):
    out = select(scores, SelectParams(method=method, ratio=25.0), emb)
    assert len(out) == 25 and out["id"].is_unique


def test_select_count_larger_than_train_raises(scores, train):
    with pytest.raises(ValueError, match="training samples"):
        select(scores, SelectParams(method="random", ratio=float(len(train) + 1)))


def test_select_ignores_test_rows(scores):
    out = select(scores, SelectParams(method="full"))
    test_ids = set(scores.loc[scores["split"] == "test", "id"])
    assert test_ids and not (set(out["id"]) & test_ids)


def test_random_seed_changes_subset(scores):
    a = select(scores, SelectParams(method="random", ratio=0.1, seed=0))
    b = select(scores, SelectParams(method="random", ratio=0.1, seed=1))
    assert set(a["id"]) != set(b["id"])


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.5, 1.0])
def test_stage1_share_per_task(scores, emb, train, method, fraction):
    out = select(scores, SelectParams(method=method, ratio=0.1, stage1_fraction=fraction), emb)
    merged = out.merge(train[["id", "task"]], on="id", validate="one_to_one")
    for _, g in merged.groupby("task"):
        assert (g["stage"] == 1).sum() == int(round(fraction * len(g)))


def test_stage1_rows_are_the_easier_ones(scores, train):
    p = SelectParams(method="tripled", ratio=0.2, stage1_fraction=0.5)
    out = select(scores, p)
    hard = pd.Series(difficulty(train, p.uncertainty_weight), index=train["id"])
    merged = out.merge(train[["id", "task"]], on="id")
    merged["hard"] = hard.loc[merged["id"]].to_numpy()
    for _, g in merged.groupby("task"):
        assert g.loc[g["stage"] == 1, "hard"].max() <= g.loc[g["stage"] == 2, "hard"].min()


def test_assign_stages_direct():
    hard = np.array([5.0, 1.0, 3.0, 2.0, 4.0, 0.0])
    tasks = np.array(["a", "a", "a", "b", "b", "b"])
    np.testing.assert_array_equal(assign_stages(hard, tasks, 0.34), [2, 1, 2, 2, 2, 1])
    np.testing.assert_array_equal(assign_stages(hard, tasks, 0.0), [2] * 6)
    np.testing.assert_array_equal(assign_stages(hard, tasks, 1.0), [1] * 6)


def test_difficulty_is_zscore_sum(train):
    c, u = train["complexity"].to_numpy(np.float64), train["uncertainty"].to_numpy(np.float64)
    expected = (c - c.mean()) / c.std() + 0.5 * (u - u.mean()) / u.std()
    np.testing.assert_allclose(difficulty(train, 0.5), expected, rtol=1e-6, atol=1e-9)
    zc = (c - c.mean()) / c.std()
    np.testing.assert_allclose(difficulty(train, 0.0), zc, rtol=1e-6, atol=1e-9)


# --------------------------------------------------------------------------- TripleD specifics


def _picked(scores, p):
    train = scores[scores["split"] == "train"].reset_index(drop=True)
    out = select(scores, p)
    return train, out.merge(train, on="id", validate="one_to_one", suffixes=("", "_train"))


def test_tripled_spreads_budget_over_tasks_by_size():
    scores = make_scores(task_sizes=(150, 400, 650), seed=3)
    p = SelectParams(method="tripled", ratio=0.1)
    train, picked = _picked(scores, p)
    names, sizes = np.unique(train["task"], return_counts=True)
    k = budget(len(train), p.ratio)
    expected = dict(zip(names, apportion(sizes, k)))
    got = picked["task"].value_counts().to_dict()
    assert got == expected
    for name, size in zip(names, sizes):
        assert abs(got[name] - k * size / len(train)) < 1


def _with_need(scores: pd.DataFrame, need: dict[str, float]) -> pd.DataFrame:
    """`scores` with an input error of 0.1 everywhere and a warm-up loss of need * 0.1 per task."""
    out = scores.copy()
    out["input_loss"] = np.float32(0.1)
    out["loss"] = (0.1 * out["task"].map(need)).astype(np.float32)
    return out


def test_task_budget_need_splits_by_size_times_need():
    scores = _with_need(make_scores(task_sizes=(200, 400, 400), seed=4),
                        {"task0": 0.9, "task1": 0.3, "task2": 0.6})
    p = SelectParams(method="tripled", ratio=0.1, task_budget="need")
    train, picked = _picked(scores, p)
    names, sizes = np.unique(train["task"], return_counts=True)
    k = budget(len(train), p.ratio)
    w = sizes * np.array([0.9, 0.3, 0.6])
    got = picked["task"].value_counts().reindex(names).to_numpy()
    assert got.sum() == k and len(picked) == k
    np.testing.assert_array_equal(got, 1 + apportion(sizes - 1, k - 3, w))  # one each, the rest by weight
    assert np.all(np.abs(got - k * w / w.sum()) < 2)
    pd.testing.assert_frame_equal(select(scores, p), select(scores, p))  # deterministic
    # the size split ignores the warm-up loss: the default gives what it gave without it
    pd.testing.assert_frame_equal(select(scores, SelectParams(method="tripled", ratio=0.1)),
                                  select(make_scores(task_sizes=(200, 400, 400), seed=4),
                                         SelectParams(method="tripled", ratio=0.1)))


def test_task_budget_need_keeps_one_sample_of_a_learnt_task():
    scores = _with_need(make_scores(seed=5), {"task0": 0.0, "task1": 0.5, "task2": 0.5})
    names, got = task_budgets(scores[scores["split"] == "train"], 30, SelectParams(task_budget="need"))
    assert dict(zip(names, got.tolist())) == {"task0": 1, "task1": 15, "task2": 14}


def test_task_budget_need_without_the_warmup_loss_is_refused(scores):
    p = SelectParams(method="tripled", ratio=0.05, task_budget="need")
    with pytest.raises(ValueError, match="warmup.steps > 0"):
        select(scores, p)  # no input_loss column
    with pytest.raises(ValueError, match="warmup.steps > 0"):
        select(_with_need(scores, {"task0": np.nan, "task1": 0.5, "task2": 0.5}), p)


def test_tripled_covers_every_cluster(scores):
    p = SelectParams(method="tripled", ratio=0.1)
    train, picked = _picked(scores, p)
    for task, g in train.groupby("task"):
        kt = (picked["task"] == task).sum()
        sizes = g["cluster"].value_counts()
        for c, size in sizes.items():
            if size * kt / len(g) >= 1.2:  # a reasonably sized cluster gets at least one pick
                assert ((picked["task"] == task) & (picked["cluster"] == c)).any(), (task, c)
    assert picked.groupby("task")["cluster"].nunique().min() == N_CLUSTERS


@pytest.mark.parametrize("trim", [0.02, 0.1, 0.3])
def test_tripled_never_picks_trimmed_hardest(scores, trim):
    p = SelectParams(method="tripled", ratio=0.2, trim=trim)
    train, picked = _picked(scores, p)
    hard = difficulty(train, p.uncertainty_weight)
    train = train.assign(hard=hard)
    picked_ids = set(picked["id"])
    for _, g in train.groupby("task"):
        g = g.sort_values("hard", kind="stable")
        n_keep = int(np.ceil(len(g) * (1 - trim)))
        trimmed = set(g["id"].iloc[n_keep:])
        assert len(trimmed) >= 1
        assert not (trimmed & picked_ids)


def test_tripled_trim_yields_to_budget():
    """When the budget exceeds what the trim leaves, the budget wins (trimmed rows are used)."""
    scores = make_scores(task_sizes=(100, 100), seed=4)
    train = scores[scores["split"] == "train"]
    out = select(scores, SelectParams(method="tripled", ratio=0.9, trim=0.3))
    assert len(out) == budget(len(train), 0.9)


def test_tripled_uses_more_sources_than_entropy_topk(scores):
    _, tripled = _picked(scores, SelectParams(method="tripled", ratio=0.05))
    _, topk = _picked(scores, SelectParams(method="entropy_topk", ratio=0.05))
    assert len(tripled) == len(topk)
    assert tripled["source"].nunique() > topk["source"].nunique()
    assert tripled["source"].nunique() >= 0.5 * N_SOURCES


def test_tripled_covers_difficulty_range(scores):
    """Picks are spread along the difficulty ranking, not concentrated at one end."""
    p = SelectParams(method="tripled", ratio=0.1)
    train, picked = _picked(scores, p)
    hard = pd.Series(difficulty(train, p.uncertainty_weight), index=train["id"])
    ph = hard.loc[picked["id"]].to_numpy()
    assert np.quantile(ph, 0.1) < np.quantile(hard, 0.3)
    assert np.quantile(ph, 0.9) > np.quantile(hard, 0.7)


def test_tripled_weights_reflect_cluster_sizes(scores):
    """Each pick stands for len(cluster) / picks in it: the weighted cluster mass matches the task."""
    p = SelectParams(method="tripled", ratio=0.1, trim=0.0)
    train, picked = _picked(scores, p)
    for task, g in picked.groupby("task"):
        n_task = (train["task"] == task).sum()
        # unnormalised weights sum to the task size; normalised ones are proportional to that
        share = g["weight"].sum() / picked["weight"].sum()
        assert share == pytest.approx(n_task / len(train), abs=1e-4)


# --------------------------------------------------------------------------- the baselines, per task and blind


PER_TASK = ("random_task", "random_spread", "entropy_topk", "gradient_topk", "kcenter", "herding", "loss")


@pytest.mark.parametrize("method", PER_TASK)
def test_per_task_baselines_take_tripleds_per_task_budget(scores, emb, train, method):
    out = select(scores, SelectParams(method=method, ratio=0.05, seed=3), emb)
    got = out.merge(train[["id", "task"]], on="id")["task"].value_counts().sort_index()
    sizes = train["task"].value_counts().sort_index()
    expected = apportion(sizes.to_numpy(), budget(len(train), 0.05))
    assert got.to_numpy().tolist() == expected.tolist()
    tripled = select(scores, SelectParams(method="tripled", ratio=0.05))
    assert tripled.merge(train[["id", "task"]], on="id")["task"].value_counts().sort_index().equals(got)


def test_random_task_is_random_inside_each_task(scores, train):
    a = select(scores, SelectParams(method="random_task", ratio=0.1, seed=0))
    pd.testing.assert_frame_equal(a, select(scores, SelectParams(method="random_task", ratio=0.1, seed=0)))
    b = select(scores, SelectParams(method="random_task", ratio=0.1, seed=1))
    assert set(a["id"]) != set(b["id"])
    # over many seeds every training row of a task is about equally likely
    counts = pd.concat([select(scores, SelectParams(method="random_task", ratio=0.1, seed=s))["id"]
                        for s in range(200)]).value_counts().reindex(train["id"], fill_value=0)
    assert counts.min() > 0 and counts.max() < 3 * counts.mean()


def test_random_spread_takes_every_source_before_a_second_tile(scores, train):
    sources = train.groupby("task")["source"].nunique()
    k = int(sources.min())  # at most one tile per source in every task
    a = select(scores, SelectParams(method="random_spread", ratio=float(len(sources) * k), seed=0))
    picked = a.merge(train[["id", "task", "source"]], on="id")
    assert (picked.groupby("task")["source"].nunique() == picked.groupby("task").size()).all()
    pd.testing.assert_frame_equal(a, select(scores, SelectParams(method="random_spread", ratio=float(len(a)), seed=0)))
    assert set(a["id"]) != set(select(scores, SelectParams(method="random_spread", ratio=float(len(a)), seed=1))["id"])
    # a larger budget: no source gets a third tile before every source of its task has two
    big = select(scores, SelectParams(method="random_spread", ratio=0.3, seed=2)).merge(train, on="id")
    per_source = big.groupby(["task", "source"]).size()
    assert (per_source.groupby("task").max() - per_source.groupby("task").min() <= 1).all()


def test_blind_baselines_ignore_the_task_split():
    # one task ten times as complex: the blind ranking takes only its rows, the per-task one splits
    scores = make_scores(task_sizes=(200, 200), seed=2)
    scores.loc[scores["task"] == "task1", "complexity"] += 100
    train = scores[scores["split"] == "train"]
    blind = select(scores, SelectParams(method="entropy_topk_blind", ratio=0.1)).merge(train, on="id")
    fair = select(scores, SelectParams(method="entropy_topk", ratio=0.1)).merge(train, on="id")
    assert set(blind["task"]) == {"task1"} and set(fair["task"]) == {"task0", "task1"}


@pytest.mark.parametrize("column,method", [("complexity", "entropy_topk"), ("gradient", "gradient_topk")])
def test_topk_picks_the_highest_values(scores, train, column, method):
    blind = select(scores, SelectParams(method=f"{method}_blind", ratio=0.05))
    chosen = train.set_index("id").loc[blind["id"], column]
    assert chosen.min() >= train.loc[~train["id"].isin(blind["id"]), column].max()
    assert (blind["weight"] == 1).all()
    fair = select(scores, SelectParams(method=method, ratio=0.05)).merge(train, on="id")
    for task, g in train.groupby("task"):
        chosen = fair.loc[fair["task"] == task, column]
        assert chosen.min() >= g.loc[~g["id"].isin(fair["id"]), column].max(), task


def test_loss_picks_highest_loss_relative_to_its_task(scores, train):
    out = select(scores, SelectParams(method="loss_blind", ratio=0.1))
    rel = train["loss"] / train.groupby("task")["loss"].transform("mean")
    chosen = rel[train["id"].isin(out["id"]).to_numpy()]
    assert chosen.min() >= rel[~train["id"].isin(out["id"]).to_numpy()].max()
    # relative to the task, so the task with ten times the raw loss does not take the whole budget
    assert train.set_index("id").loc[out["id"], "task"].nunique() == 3


@pytest.mark.parametrize("method", ["loss", "loss_blind"])
def test_loss_without_warmup_loss_is_a_clear_error(scores, method):
    with pytest.raises(ValueError, match="warmup.steps > 0"):
        select(scores.assign(loss=np.nan), SelectParams(method=method))


@pytest.mark.parametrize("method", FEATURE_METHODS)
def test_feature_methods_need_features(scores, method):
    with pytest.raises(ValueError, match="feature store"):
        select(scores, SelectParams(method=method))
    with pytest.raises(ValueError, match="rerun extract"):
        select(scores, SelectParams(method=method), np.zeros((3, DIM), np.float32))


def _rows(scores, emb, out):
    train = (scores["split"] == "train").to_numpy()
    ids = scores["id"].to_numpy()[train]
    x = emb[train] / np.linalg.norm(emb[train], axis=1, keepdims=True)
    return x, np.isin(ids, out["id"])


def test_kcenter_covers_the_feature_space_better_than_random(scores, emb):
    x, picked = _rows(scores, emb, select(scores, SelectParams(method="kcenter_blind", ratio=0.05, seed=0), emb))

    def radius(mask):  # the farthest any sample is from its nearest pick
        return np.linalg.norm(x[:, None] - x[mask][None], axis=2).min(1).max()

    rand = [radius(_rows(scores, emb, select(scores, SelectParams(method="random", ratio=0.05, seed=s)))[1])
            for s in range(5)]
    assert radius(picked) < min(rand)
    other = select(scores, SelectParams(method="kcenter_blind", ratio=0.05, seed=1), emb)
    assert set(other["id"]) != set(select(scores, SelectParams(method="kcenter_blind", ratio=0.05, seed=0), emb)["id"])


def test_herding_matches_the_feature_mean_better_than_random(scores, emb):
    x, picked = _rows(scores, emb, select(scores, SelectParams(method="herding_blind", ratio=0.05), emb))
    gap = np.linalg.norm(x[picked].mean(0) - x.mean(0))
    rand = [np.linalg.norm(x[_rows(scores, emb, select(scores, SelectParams(method="random", ratio=0.05, seed=s)))[1]]
                           .mean(0) - x.mean(0)) for s in range(5)]
    assert gap < 0.5 * min(rand)


# --------------------------------------------------------------------------- ablation switches


def test_no_stratify_ignores_the_clusters(scores):
    """stratify: false -> the cluster column has no influence; stratify: true -> it has."""
    relabelled = scores.assign(cluster=np.random.default_rng(9).integers(0, N_CLUSTERS, len(scores)))
    off = SelectParams(method="tripled", ratio=0.1, stratify=False)
    pd.testing.assert_frame_equal(select(scores, off), select(relabelled, off))
    on = SelectParams(method="tripled", ratio=0.1)
    assert set(select(scores, on)["id"]) != set(select(relabelled, on)["id"])


def shared_content_scores(n_tasks=4, n_tiles=300, seed=0) -> pd.DataFrame:
    """Synthesised tasks: every task degrades the same clean tiles, so complexity and cluster (from the
    clean side) repeat across tasks; only uncertainty differs a little."""
    rng = np.random.default_rng(seed)
    source = rng.integers(0, 30, n_tiles)
    tiles = [f"img{s}@{i},0" for i, s in enumerate(source)]
    complexity, cluster = rng.normal(size=n_tiles), rng.integers(0, N_CLUSTERS, n_tiles)
    uncertainty = np.abs(rng.normal(size=n_tiles))
    return pd.concat([pd.DataFrame(dict(
        id=[f"task{t}/{tile}" for tile in tiles], task=f"task{t}", source=source.astype(str), split="train",
        label=np.nan, complexity=complexity.astype(np.float32), gradient=complexity.astype(np.float32),
        uncertainty=(uncertainty + 0.01 * rng.normal(size=n_tiles)).astype(np.float32),
        cluster=cluster.astype(np.int32))) for t in range(n_tasks)]).reset_index(drop=True)


def test_content_keys_drop_the_task():
    from tripled.selection.methods import content_keys
    ids = pd.Series(["rain/astronaut@0,64", "haze/astronaut@0,64", "haze/sub/dir/x.png", "plain"])
    assert content_keys(ids).tolist() == ["astronaut@0,64", "astronaut@0,64", "sub/dir/x.png", "plain"]


@pytest.mark.parametrize("ratio", [0.02, 0.05, 0.2])
def test_distinct_content_spreads_the_tasks_over_different_tiles(ratio):
    """Default: the tasks pick mostly the same clean tiles. distinct_content: every pick shows a different
    tile (there are enough), with the same per-task budget, deterministically."""
    from tripled.selection.methods import content_keys
    scores = shared_content_scores()
    tile = dict(zip(scores["id"], content_keys(scores["id"])))
    base = select(scores, SelectParams(method="tripled", ratio=ratio))
    on = select(scores, SelectParams(method="tripled", ratio=ratio, distinct_content=True))
    k = budget(len(scores), ratio)
    assert len(on) == len(base) == k and on["id"].is_unique
    pd.testing.assert_series_equal(on["id"].str.split("/").str[0].value_counts().sort_index(),
                                   base["id"].str.split("/").str[0].value_counts().sort_index())
    assert len({tile[i] for i in on["id"]}) == k
    assert len({tile[i] for i in base["id"]}) < 0.6 * k  # the failure it fixes
    pd.testing.assert_frame_equal(on, select(scores, SelectParams(method="tripled", ratio=ratio,
                                                                  distinct_content=True)))


def test_distinct_content_falls_back_when_tiles_run_out():
    """More picks than tiles: tasks share tiles again, but the budget is still exact."""
    scores = shared_content_scores(n_tasks=3, n_tiles=20)
    on = select(scores, SelectParams(method="tripled", ratio=0.8, distinct_content=True))
    assert len(on) == budget(len(scores), 0.8) and on["id"].is_unique


def test_no_uncertainty_ignores_the_uncertainty(scores):
    shuffled = scores.assign(uncertainty=np.random.default_rng(9).permutation(scores["uncertainty"].to_numpy()))
    off = SelectParams(method="tripled", ratio=0.1, uncertainty_weight=0.0)
    pd.testing.assert_frame_equal(select(scores, off), select(shuffled, off))
    on = SelectParams(method="tripled", ratio=0.1)
    assert not select(scores, on).equals(select(shuffled, on))


def test_per_task_feature_baselines_do_their_job_inside_each_task(scores, emb, train):
    """kcenter covers, and herding matches the mean of, each task's features better than random_task."""
    x = emb[(scores["split"] == "train").to_numpy()]
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    tasks, ids = train["task"].to_numpy(), train["id"].to_numpy()

    def per_task(method, seed, measure):
        picked = np.isin(ids, select(scores, SelectParams(method=method, ratio=0.05, seed=seed), emb)["id"])
        return [measure(x[tasks == t], picked[tasks == t]) for t in np.unique(tasks)]

    def radius(xt, mask):
        return np.linalg.norm(xt[:, None] - xt[mask][None], axis=2).min(1).max()

    def gap(xt, mask):
        return np.linalg.norm(xt[mask].mean(0) - xt.mean(0))

    rand = np.array([per_task("random_task", s, radius) for s in range(5)]).min(0)
    assert (np.array(per_task("kcenter", 0, radius)) < rand).all()
    rand = np.array([per_task("random_task", s, gap) for s in range(5)]).min(0)
    assert (np.array(per_task("herding", 0, gap)) < rand).all()


def _with_contrast(scores: pd.DataFrame, seed=0) -> pd.DataFrame:
    """A third of the tiles near-flat (contrast < 4), the rest textured."""
    rng = np.random.default_rng(seed)
    flat = rng.random(len(scores)) < 1 / 3
    return scores.assign(contrast=np.where(flat, rng.uniform(0, 4, len(scores)), rng.uniform(4, 60, len(scores))))


@pytest.mark.parametrize("method", sorted(METHODS))
def test_min_contrast_keeps_the_budget_and_leaves_flat_tiles_out(scores, emb, train, method):
    with_contrast = _with_contrast(scores)
    p = SelectParams(method=method, ratio=0.1, seed=2, min_contrast=4.0)
    out = select(with_contrast, p, emb)
    picked = with_contrast.set_index("id").loc[out["id"]]
    assert (picked["contrast"] >= 4.0).all() and (picked["split"] == "train").all() and out["id"].is_unique
    textured = int(((with_contrast["split"] == "train") & (with_contrast["contrast"] >= 4.0)).sum())
    assert len(out) == (textured if method == "full" else budget(len(train), 0.1))  # the budget of the whole pool
    pd.testing.assert_frame_equal(out, select(with_contrast, p, emb))  # deterministic
    # off (0) picks as before, whatever the contrast column holds
    pd.testing.assert_frame_equal(select(with_contrast, SelectParams(method=method, ratio=0.1, seed=2), emb),
                                  select(scores, SelectParams(method=method, ratio=0.1, seed=2), emb))


def test_min_contrast_needs_the_column_and_enough_tiles(scores):
    with pytest.raises(ValueError, match="column 'contrast'"):
        select(scores, SelectParams(method="random_task", min_contrast=4.0))
    with pytest.raises(ValueError, match="fewer than the budget"):
        select(_with_contrast(scores), SelectParams(method="random_task", ratio=0.9, min_contrast=4.0))
    all_flat = _with_contrast(scores).assign(contrast=lambda d: np.where(d["task"] == "task1", 1.0, d["contrast"]))
    with pytest.raises(ValueError, match=r"no training tile of task\(s\) \['task1'\]"):
        select(all_flat, SelectParams(method="random_task", min_contrast=4.0))


def test_contrast_is_the_luminance_std():
    from tripled.selection.flat import contrast

    flat = np.full((16, 16, 3), 120, np.uint8)
    assert contrast(flat) == 0.0
    stripes = flat.copy()
    stripes[:, ::2] = 100  # luminance 100 and 120 in equal shares: std 10
    assert contrast(stripes) == pytest.approx(10.0)
    assert contrast(stripes[..., 0]) == pytest.approx(10.0)  # a grey image
