"""bench/precision.py on tiny sizes: both precisions timed, ratios and the CPU's bf16 features reported."""
import json
import os
import subprocess
import sys

from bench.common import ROOT


def test_precision_bench_times_both_precisions():
    cmd = [sys.executable, str(ROOT / "bench/precision.py"), "--repeats", "1", "--steps", "2", "--size", "64",
           "--tile", "64"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    r = json.loads(done.stdout)
    for p in ("fp32", "bf16"):
        assert r[p]["train_steps_per_s"] > 0 and r[p]["eval_mpixel_per_s"] > 0
    assert r["bf16_over_fp32"]["train"] == round(r["bf16"]["train_steps_per_s"] / r["fp32"]["train_steps_per_s"], 3)
    assert set(r["cpu_bf16"]) == {"avx512_bf16", "amx"} and r["provenance"]["machine"]["cores"] >= 1
