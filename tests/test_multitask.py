"""Multi-task mode: one restorer per task, as DVC foreach stages (select@rain, train@noise25, ...) over
params.yaml's `restorers`; extraction and scoring run once for all of them."""
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import TINY, make_project, run, set_params

PER_TASK = {"noise25": {"tasks": ["noise25"]}, "rain": {"tasks": ["rain"], "select": {"ratio": 0.1}}}


def _ran(log: str) -> list[str]:
    return sorted(re.findall(r"Running stage '([a-z@0-9_]+)'", log))


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = make_project(tmp_path_factory.mktemp("multitask"), {**TINY, "restorers": PER_TASK})
    log = run(["dvc", "repro"], repo)
    assert _ran(log) == ["evaluate@noise25", "evaluate@rain", "extract", "prepare", "refine@noise25", "refine@rain",
                         "score", "select@noise25", "select@rain", "train@noise25", "train@rain", "warmup"]
    return repo


def test_one_distilled_set_and_one_model_per_task(repo: Path) -> None:
    index = pd.read_parquet(repo / "data/index.parquet")
    n_train = index[index["split"] == "train"].groupby("task").size()
    for task, ratio in (("noise25", 0.05), ("rain", 0.1)):
        manifest = pd.read_parquet(repo / f"data/distilled/{task}/manifest.parquet")
        assert set(manifest["task"]) == {task} and len(manifest) == round(ratio * n_train[task])
        assert (repo / f"models/{task}/restorer.pt").is_file()
        result = json.loads((repo / f"metrics/{task}/eval.json").read_text())
        assert set(result["tasks"]) == {task}  # scored on its own task
        card = json.loads((repo / f"data/distilled/{task}/card.json").read_text())
        assert card["selection"]["ratio"] == ratio and card["source"]["train_samples"] == n_train[task]
    shown = run(["dvc", "metrics", "show"], repo)  # one summary of every task's model
    assert "metrics/noise25/eval.json" in shown and "metrics/rain/eval.json" in shown


def test_changing_one_tasks_params_reruns_only_its_stages(repo: Path) -> None:
    set_params(repo, {"restorers": {**PER_TASK, "rain": {"tasks": ["rain"], "select": {"ratio": 0.08}}}})
    status = json.loads(run(["dvc", "status", "--json"], repo))
    assert set(status) == {"select@rain", "refine@rain", "train@rain", "evaluate@rain"}
    assert _ran(run(["dvc", "repro"], repo)) == ["evaluate@rain", "refine@rain", "select@rain", "train@rain"]
    assert _ran(run(["dvc", "repro", "train@rain", "--force", "--single-item"], repo)) == ["train@rain"]


def test_a_task_missing_from_the_index_is_a_clear_error(repo: Path) -> None:
    set_params(repo, {"restorers": {**PER_TASK, "haze": {"tasks": ["haze"]}}})
    out = run(["python", "stages/select_subset.py", "--restorer", "haze"], repo, check=False)
    assert "restorers.haze.tasks: ['haze'] are not tasks of the index" in out


def test_min_contrast_through_the_select_stage(repo: Path, monkeypatch) -> None:
    from tripled.data.index import load_index
    from tripled.selection.flat import tile_contrast

    monkeypatch.chdir(repo)  # data.root is relative to the project
    index = load_index("data/index.parquet")
    train = index[(index["task"] == "rain") & (index["split"] == "train")].reset_index(drop=True)
    contrast = pd.Series(tile_contrast(train), index=train["id"])
    bound = float(contrast.median())  # half the pool is left out; the budget (10 %) is not
    set_params(repo, {"restorers": {**PER_TASK, "rain": {"tasks": ["rain"], "select": {"ratio": 0.1,
                                                                                        "min_contrast": bound}}}})
    run(["python", "stages/select_subset.py", "--restorer", "rain"], repo)
    subset = pd.read_parquet(repo / "data/subsets/rain.parquet")
    assert len(subset) == round(0.1 * len(train)) and (contrast[subset["id"]] >= bound).all()
