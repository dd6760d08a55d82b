"""Small builders shared by the tests."""
from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image

from bench.common import make_project as bench_make_project
from tripled.data.distilled import DistilledWriter
from tripled.features.params import FeatureParams
from tripled.hashing import file_hash

TINY_VIT = FeatureParams(backbone="vit_tiny_patch16_224", thumb_size=32, batch_size=8, label_samples=8,
                         scratch_steps=0, model_kwargs=dict(depth=1, embed_dim=48, num_heads=2))


def smooth_images(n: int, size: int, seed: int = 0) -> np.ndarray:
    """n smooth colour images (n x size x size x 3 uint8)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for _ in range(n):
        a, b, c = rng.uniform(0.2, 0.8, 3)
        img = np.stack([a + 0.2 * np.sin(6 * xx * b), b + 0.2 * np.cos(5 * yy * c), c + 0.1 * xx], -1)
        out.append(np.clip(img * 255, 0, 255).astype(np.uint8))
    return np.stack(out)


def write_distilled(folder: Path, n: int = 8, size: int = 32, sigma: float = 25.0) -> Path:
    """A toy distilled set: smooth clean images and noisy inputs, two tasks, two stages."""
    rng = np.random.default_rng(1)
    writer = DistilledWriter(folder, dict(toy=True))
    for i, gt in enumerate(smooth_images(n, size)):
        lq = np.clip(gt + rng.normal(0, sigma if i % 2 else sigma / 2, gt.shape), 0, 255).astype(np.uint8)
        writer.add(dict(id=f"t{i % 2}/{i}", task=f"t{i % 2}", stage=1 + (i % 4 >= 2), weight=1.0), gt, lq)
    writer.close()
    return folder


TINY = {
    "data": {"degradations": [{"type": "noise", "sigma": 25}, {"type": "rain"}], "tile": 64},
    "features": {"model_kwargs": {"depth": 2}, "label_samples": 60, "scratch_steps": 5, "batch_size": 32},
    "score": {"clusters": 4, "heads": 4},
    "warmup": {"steps": 5},
    "select": {"ratio": 0.05},
    "refine": {"steps": 3},
    "model": {"kwargs": {"width": 8, "enc_blk_nums": [1, 1], "dec_blk_nums": [1, 1], "middle_blk_num": 1}},
    "train": {"steps": 30, "steps_per": "run", "checkpoint_every": 10, "log_every": 5, "eval_every": 10,
              "eval_samples": 8},
    "evaluate": {"unseen": [{"type": "jpeg", "quality": 20}, [{"type": "noise", "sigma": 10}, {"type": "rain"}]]},
}
GIT_ID = ["-c", "user.email=t@t", "-c", "user.name=t"]


def run(cmd: list[str], cwd: Path, env: dict | None = None, check: bool = True) -> str:
    """Run a command (dvc, git, a stage) and return its output; fail the test with the output if it fails."""
    env = dict(os.environ, DVC_NO_ANALYTICS="1", HF_HUB_OFFLINE="1", **(env or {}))
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert out.returncode == 0 or not check, f"{' '.join(cmd)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout + out.stderr


def set_params(repo: Path, overrides: dict) -> None:
    """params.yaml with `overrides` ({section: {key: value}}; `restorers` replaced as a whole)."""
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for section, values in overrides.items():
        params[section] = values if section == "restorers" else {**params[section], **values}
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def commit_all(repo: Path, message: str) -> None:
    run(["git", *GIT_ID, "add", "-A"], repo)
    run(["git", *GIT_ID, "commit", "-qm", message], repo)


def make_project(repo: Path, overrides: dict = TINY) -> Path:
    """The project's pipeline in a new git repo `repo`, with `overrides` applied to params.yaml."""
    return bench_make_project(repo, overrides)


def read_curve(metrics_dir: Path) -> pd.DataFrame:
    """The training curve the train stage logged with dvclive: step, loss, lr, stage."""
    folder = Path(metrics_dir) / "dvclive/plots/metrics"
    frames = [pd.read_csv(folder / f"{name}.tsv", sep="\t") for name in ("loss", "lr", "stage")]
    return frames[0].merge(frames[1], on="step").merge(frames[2], on="step")


def write_image_index(folder: Path, names: list[str], size: int = 48, ext: str = "jpg") -> pd.DataFrame:
    """An index of whole-image samples (one file per name, content derived from the name), sorted by id."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names:
        img = smooth_images(1, size, seed=int(hashlib.sha256(name.encode()).hexdigest()[:8], 16))[0]
        path = folder / f"{name}.{ext}"
        Image.fromarray(img).save(path)
        rows.append(dict(id=name, gt_path=str(path), lq_path=str(path), x=0, y=0, w=size, h=size, width=size,
                         height=size, hash=file_hash(path)[:16]))
    return pd.DataFrame(rows).sort_values("id").reset_index(drop=True)
