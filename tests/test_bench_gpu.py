"""bench/gpu.py --dry-run: every section runs on the CPU at a tiny size and reports positive figures, so the
GPU bench cannot rot before a GPU runs it; without --dry-run and without CUDA it refuses plainly."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", DVC_NO_ANALYTICS="1", TMPDIR=str(tmp_path), PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "bench/gpu.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def test_dry_run_measures_every_section(tmp_path):
    out = _run(tmp_path, "--dry-run", "--out", str(tmp_path / "gpu.json"), "--quality-dir", str(tmp_path / "quality"))
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == json.loads((tmp_path / "gpu.json").read_text())
    assert result["dry_run"] and result["device"].startswith("cpu (dry run") and result["complete"]
    assert result["failed"] == [] and set(result["seconds"]) == {"extract", "train", "ddp", "quality"}
    assert result["provenance"]["code_sha256"] and result["provenance"]["params_sha256"]

    ex = result["extract"]
    for key in ("ceiling_img_s", "nvjpeg_decode_img_s", "extract_cpu_decode_img_s", "extract_nvjpeg_img_s",
                "nvjpeg_decode_to_ceiling", "extract_cpu_decode_to_ceiling", "extract_nvjpeg_to_ceiling"):
        assert ex[key] > 0, key
    assert ex["images"] == 2 and not ex["nvjpeg"]

    train = result["train"]
    assert train["patches_per_s"] > 0 and train["step_ms"] > 0 and train["peak_mem_mb"] > 0
    assert 0 <= train["data_wait_fraction"] < 1 and train["world_size"] == 1
    proj = result["projection"]
    assert proj["steps"] == 60000 and proj["hours"] > 0 and proj["paper_hours"] == 8.0

    ddp = result["ddp"]
    assert ddp["status"] == "ran" and ddp["world_size"] == 2 and ddp["patches_per_s"] > 0

    q = result["quality"]
    assert q["jobs"] == 2 and len(q["runs"]) == 8  # 4 methods x 2 seeds, two restorers side by side
    summary = q["summary"]
    for method in ("tripled", "random_task", "full", "full-long"):
        assert summary[method]["n"] == 2 and summary[method]["psnr_mean"] > 0, method
    assert summary["tripled"]["vs_reference"]["n"] == 2  # paired with random_task, seed by seed
    assert {"gain_retained", "gain_retained_long", "psnr_ratio"} <= set(summary["tripled"])
    assert summary["full"]["samples"] == summary["full-long"]["samples"] > summary["tripled"]["samples"] > 0
    report = tmp_path / "quality"
    assert json.loads((report / "quality.json").read_text()) == summary
    assert "| full-long | 2 |" in (report / "quality.md").read_text()
    assert len(json.loads((report / "runs.json").read_text())) == 8
    assert not list(tmp_path.glob("bench_gpu_*"))  # its work folder is removed


def test_restorer_plan_pairs_methods_by_seed():
    sys.path.insert(0, str(ROOT))
    from bench.gpu import LONG_SEEDS, restorer_plan

    plan = restorer_plan(["tripled", "random_task", "full-long"], 5, 3000, 5)
    names = list(plan)
    assert names[:LONG_SEEDS] == [f"full-long_s{s}" for s in range(LONG_SEEDS)]  # the longest runs first
    assert names[LONG_SEEDS:LONG_SEEDS + 4] == ["tripled_s0", "random_task_s0", "tripled_s1", "random_task_s1"]
    method, seed, entry = plan["full-long_s2"]
    assert (method, seed, entry["train"]["steps"], entry["train"]["seed"]) == ("full-long", 2, 15000, 2)
    assert plan["random_task_s4"][2]["select"] == {"method": "random_task", "seed": 4}
    assert plan["tripled_s4"][2]["refine"] == {"enabled": True, "seed": 4} and len(plan) == 10 + LONG_SEEDS


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_without_cuda_it_needs_dry_run(tmp_path):
    out = _run(tmp_path, "--sections", "train")
    assert out.returncode != 0 and "no CUDA device" in out.stderr and not out.stdout
