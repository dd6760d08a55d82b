"""bench/quality.py for real, on tiny params: runs side by side in project copies, each on its own
threads, give the same results as alone; finished runs are kept; the paired comparison is reported."""
import json
import os
import subprocess
import sys

import pytest
import yaml

from bench.common import ROOT
from tests.helpers import TINY

SETS = [f"{section}.{key}={yaml.safe_dump(value, default_flow_style=True).strip()}"
        for section, values in TINY.items() for key, value in values.items() if (section, key) != ("train", "steps")]


def _bench(out, *args):
    cmd = [sys.executable, str(ROOT / "bench/quality.py"), "--out", str(out), "--steps", "20", "--seeds", "2",
           "--methods", "random_task,full", *[a for s in SETS for a in ("--set", s)], *args]
    env = dict(os.environ, HF_HUB_OFFLINE="1", DVC_NO_ANALYTICS="1")
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores")
def test_runs_side_by_side_equal_runs_alone_and_are_kept(tmp_path):
    best = ("--eval-every", "10", "--set", "train.keep_best=true")  # curves, and the judged weights kept
    log = _bench(tmp_path, "--jobs", "2", "--threads", "1", *best)
    assert "0 runs kept" in log and "4 to run, 2 at a time on 1 thread(s) each" in log
    assert (tmp_path / "project-1").is_dir()  # the second job's copy
    runs = json.loads((tmp_path / "runs.json").read_text())
    assert sorted((r["method"], r["seed"]) for r in runs) == [("full", 0), ("full", 1), ("random_task", 0),
                                                              ("random_task", 1)]
    assert all(r["provenance"]["threads"] == 1 and r["provenance"]["params_sha256"] for r in runs)
    summary = json.loads((tmp_path / "quality.json").read_text())
    assert summary["full"]["vs_reference"]["n"] == 2 and "seeds_needed" in summary["full"]["vs_reference"]
    for r in runs:  # the full set leaves no training tile out to judge on: its last weights, no val_psnr
        assert r["curve"]["step"] == [10, 20] and len(r["curve"]["psnr"]) == 2
        judged = r["curve"].get("val_psnr")
        if r["method"] == "full":
            assert judged is None and "kept_step" not in r
        else:
            assert r["kept_step"] == [10, 20][judged.index(max(judged))]

    # drop one run: a rerun alone (one job) recomputes only it, with the same result to the last digit
    dropped = next(r for r in runs if (r["method"], r["seed"]) == ("random_task", 1))
    (tmp_path / "runs.json").write_text(json.dumps([r for r in runs if r is not dropped]))
    # only seed 1: its other run is kept, and seed 0's runs stay in runs.json though out of the report
    log = _bench(tmp_path, "--jobs", "1", "--threads", "1", "--seed-list", "1", *best)
    assert "1 runs kept" in log and "1 to run" in log
    kept = json.loads((tmp_path / "runs.json").read_text())
    assert sorted((r["method"], r["seed"]) for r in kept) == sorted((r["method"], r["seed"]) for r in runs)
    again = next(r for r in kept if (r["method"], r["seed"]) == ("random_task", 1))
    assert again["eval"] == dropped["eval"]
    assert json.loads((tmp_path / "quality.json").read_text())["full"]["n"] == 1


def test_demo_time_times_every_stage_beside_a_cpu_reference():
    cmd = [sys.executable, str(ROOT / "bench/demo_time.py"), *[a for s in SETS for a in ("--set", s)],
           "--set", "train.steps=20"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", DVC_NO_ANALYTICS="1")
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    run = result["runs"]["working tree"]
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert list(run["stages"]) == list(stages) and all(s > 0 for s in run["stages"].values())
    assert run["total_s"] == pytest.approx(sum(run["stages"].values()), abs=0.5)
    assert run["psnr"] > 0 and result["cpu_reference"]["matmul_gflops"] > 0 and result["machine"]["cores"] >= 1
    assert run["train_steps_per_s"] > 0 and run["eval_mpixel_per_s"] > 0
