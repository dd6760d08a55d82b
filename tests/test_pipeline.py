"""End to end: the project copied into a temporary git repo, `dvc repro` with tiny params."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import zarr

from tests.helpers import TINY, make_project, read_curve
from tests.helpers import run as _run
from tests.helpers import set_params as _set_params


def _ran(log: str) -> set[str]:
    return set(re.findall(r"Running stage '([a-z]+)(?:@\w+)?'", log))  # select@all -> select


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = make_project(tmp_path_factory.mktemp("project"))
    log = _run(["dvc", "repro"], repo)
    assert _ran(log) == {"prepare", "extract", "score", "warmup", "select", "refine", "train", "evaluate"}
    return repo


def test_every_output(repo: Path) -> None:
    index = pd.read_parquet(repo / "data/index.parquet")
    assert set(index["task"]) == {"noise25", "rain"} and set(index["split"]) == {"train", "test"}
    assert not set(index.loc[index.split == "test", "source"]) & set(index.loc[index.split == "train", "source"])

    store = zarr.open_group(repo / "data/features.zarr", mode="r")
    assert store["embedding"].shape[0] == len(index)
    assert store.attrs["weights"] == "scratch"
    assert (repo / "models/vit/backbone.pt").is_file()

    scores = pd.read_parquet(repo / "data/scores.parquet")
    assert list(scores["id"]) == list(index["id"])
    warmup = pd.read_parquet(repo / "data/warmup.parquet")
    train = (index["split"] == "train").to_numpy()
    assert list(warmup["id"]) == list(index["id"]) and warmup["loss"][train].notna().all()  # TINY: 5 proxy steps
    subset = pd.read_parquet(repo / "data/subsets/all.parquet")
    n_train = int((index["split"] == "train").sum())
    assert len(subset) == round(0.05 * n_train) and set(subset["stage"]) == {1, 2}

    manifest = pd.read_parquet(repo / "data/distilled/all/manifest.parquet")
    assert sorted(manifest["id"]) == sorted(subset["id"])
    refine = json.loads((repo / "metrics/all/refine.json").read_text())
    assert refine["steps"] == 3 and refine["samples"] == len(subset)
    assert refine["after"] == refine["kl_after"] != refine["kl_before"] == refine["before"]  # 3 steps moved the set

    assert (repo / "models/all/restorer.pt").is_file()
    curve = read_curve(repo / "metrics/all")
    assert list(curve["step"]) == list(range(5, 31, 5))
    psnr = pd.read_csv(repo / "metrics/all/dvclive/plots/metrics/psnr.tsv", sep="\t")  # held-out PSNR, live
    assert list(psnr["step"]) == [10, 20, 30] and psnr["psnr"].between(10, 60).all()
    card = json.loads((repo / "data/distilled/all/card.json").read_text())
    assert card["samples"] == len(subset) and card["selection"]["ratio"] == 0.05
    projection = pd.read_csv(repo / "plots/all/features_2d.csv")
    counts = projection["set"].value_counts().to_dict()
    assert counts == {"all": n_train, "selected": len(subset), "refined": len(subset)}
    result = json.loads((repo / "metrics/all/eval.json").read_text())
    assert set(result["tasks"]) == {"noise25", "rain"}
    assert set(result["unseen"]["tasks"]) == {"jpeg20", "noise10+rain"}  # scored apart from the trained tasks
    test_tiles = index[index["split"] == "test"].drop_duplicates(["gt_path", "x", "y"])
    assert result["unseen"]["samples"] == 2 * len(test_tiles)
    assert all(k in result["overall"] for k in ("psnr", "psnr_input", "ssim", "ssim_input"))
    assert len(pd.read_csv(repo / "plots/all/psnr_per_task.csv")) == 8  # input and restored, 2 trained + 2 unseen
    assert pd.read_csv(repo / "plots/all/complexity.csv")["selected"].sum() == len(subset)


def test_keep_best_judges_on_training_tiles_left_out(repo: Path, tmp_path: Path) -> None:
    """train.keep_best, by the stage script outside DVC (its own params file and outputs)."""
    import yaml

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["keep_best"] = True
    (repo / "params-best.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        log = _run(["python", "stages/train.py", "--params", "params-best.yaml", "--out", str(tmp_path / "model"),
                    "--metrics", str(tmp_path / "metrics")], repo)
        n_tasks = 2
        assert f"judges on {8 * n_tasks} training tiles left out of the set" in log  # eval_samples 8 per task
        judged = pd.read_csv(tmp_path / "metrics/dvclive/plots/metrics/val_psnr.tsv", sep="\t")
        assert list(judged["step"]) == [10, 20, 30] and judged["val_psnr"].between(10, 60).all()
        best = judged.loc[judged["val_psnr"].idxmax()]
        summary = json.loads((tmp_path / "metrics/train.json").read_text())
        assert summary["kept_step"] == best["step"]
        assert summary["kept_val_psnr"] == pytest.approx(best["val_psnr"], abs=1e-4)
        assert (tmp_path / "model/restorer.pt").is_file()
    finally:
        (repo / "params-best.yaml").unlink()


def test_rerun_is_noop_and_reruns_only_what_changed(repo: Path) -> None:
    assert _ran(_run(["dvc", "repro"], repo)) == set()

    _set_params(repo, {"train": {"steps": 20}})
    assert _ran(_run(["dvc", "repro"], repo)) == {"train", "evaluate"}

    _set_params(repo, {"select": {"ratio": 0.08}})
    assert _ran(_run(["dvc", "repro"], repo)) == {"select", "refine", "train", "evaluate"}
    assert "data and pipelines are up to date" in _run(["dvc", "status"], repo).lower()


def test_forced_extract_reuses_its_persistent_cache(repo: Path) -> None:
    assert (repo / "data/extract_cache").is_dir()  # persist: true, so dvc repro keeps it (resume, new images)
    log = _run(["dvc", "repro", "-f", "-s", "extract"], repo)
    assert "(0 embedded now" in log and "(0 computed now)" in log
    assert "data and pipelines are up to date" in _run(["dvc", "status"], repo).lower()


def _status(repo: Path) -> set[str]:
    return set(json.loads(_run(["dvc", "status", "--json"], repo)))


def test_editing_the_training_loop_or_the_model_reaches_only_train(repo: Path) -> None:
    """`dvc status` after a one-line edit of the training loop, and after a model.kwargs change."""
    assert _status(repo) == set()
    loop = repo / "tripled/training/loop.py"
    original = loop.read_text()
    loop.write_text(original + "\n# an edit\n")
    try:
        assert _status(repo) == {"train@all"}  # evaluate follows only if the model it reads changes
    finally:
        loop.write_text(original)
    params = (repo / "params.yaml").read_text()
    _set_params(repo, {"model": {"kwargs": {**TINY["model"]["kwargs"], "width": 4}}})
    try:
        assert _status(repo) == {"train@all"}
    finally:
        (repo / "params.yaml").write_text(params)
    assert _status(repo) == set()
