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
    out = _run(tmp_path, "--dry-run", "--out", str(tmp_path / "gpu.json"))
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
    assert len(q["seeds"]) == 1 and q["psnr_mean"] > 0 and q["psnr_input"] > 0
    assert q["seeds"][0]["samples"] > 0 and q["seeds"][0]["train_seconds"] > 0
    assert not list(tmp_path.glob("bench_gpu_*"))  # its work folder is removed


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_without_cuda_it_needs_dry_run(tmp_path):
    out = _run(tmp_path, "--sections", "train")
    assert out.returncode != 0 and "no CUDA device" in out.stderr and not out.stdout
