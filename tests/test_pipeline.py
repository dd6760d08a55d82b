"""End to end: the project copied into a temporary git repo, `dvc repro` with tiny params."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
import zarr

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["stages", "tripled", "dvc.yaml", "params.yaml", "setup.cfg", "pyproject.toml", ".dvc/config",
                 ".dvc/.gitignore", ".dvcignore"]

TINY = {
    "data": {"degradations": [{"type": "noise", "sigma": 25}, {"type": "rain"}], "tile": 64},
    "features": {"model_kwargs": {"depth": 2}, "label_samples": 60, "scratch_steps": 5, "batch_size": 32},
    "score": {"clusters": 4, "heads": 4, "loss_steps": 5},
    "select": {"ratio": 0.05},
    "refine": {"steps": 3},
    "model": {"kwargs": {"width": 8, "enc_blk_nums": [1, 1], "dec_blk_nums": [1, 1], "middle_blk_num": 1}},
    "train": {"steps": 30, "checkpoint_every": 10, "log_every": 5},
}


def _run(cmd: list[str], cwd: Path) -> str:
    env = dict(os.environ, DVC_NO_ANALYTICS="1", HF_HUB_OFFLINE="1")
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, f"{' '.join(cmd)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout + out.stderr


def _set_params(repo: Path, overrides: dict) -> None:
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for section, values in overrides.items():
        params[section].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def _ran(log: str) -> set[str]:
    return set(re.findall(r"Running stage '([a-z]+)'", log))


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("project")
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, repo / name)
    _set_params(repo, TINY)
    _run(["git", "init", "-q"], repo)
    _run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A"], repo)
    _run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"], repo)
    log = _run(["dvc", "repro"], repo)
    assert _ran(log) == {"prepare", "extract", "score", "select", "refine", "train", "evaluate"}
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
    subset = pd.read_parquet(repo / "data/subset.parquet")
    n_train = int((index["split"] == "train").sum())
    assert len(subset) == round(0.05 * n_train) and set(subset["stage"]) == {1, 2}

    manifest = pd.read_parquet(repo / "data/distilled/manifest.parquet")
    assert sorted(manifest["id"]) == sorted(subset["id"])
    refine = json.loads((repo / "metrics/refine.json").read_text())
    assert refine["steps"] == 3 and refine["after"] >= 0

    assert (repo / "models/restorer.pt").is_file()
    curve = pd.read_csv(repo / "metrics/train_curve.csv")
    assert curve["step"].iloc[-1] == 30
    result = json.loads((repo / "metrics/eval.json").read_text())
    assert set(result["tasks"]) == {"noise25", "rain"}
    assert all(k in result["overall"] for k in ("psnr", "psnr_input", "ssim", "ssim_input"))
    assert len(pd.read_csv(repo / "plots/psnr_per_task.csv")) == 4
    assert pd.read_csv(repo / "plots/complexity.csv")["selected"].sum() == len(subset)


def test_rerun_is_noop_and_reruns_only_what_changed(repo: Path) -> None:
    assert _ran(_run(["dvc", "repro"], repo)) == set()

    _set_params(repo, {"train": {"steps": 20}})
    assert _ran(_run(["dvc", "repro"], repo)) == {"train", "evaluate"}

    _set_params(repo, {"select": {"ratio": 0.08}})
    assert _ran(_run(["dvc", "repro"], repo)) == {"select", "refine", "train", "evaluate"}
    assert "data and pipelines are up to date" in _run(["dvc", "status"], repo).lower()
