"""bench/extract.py end to end on a few small JPEGs: it runs from a folder and prints every key."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"images", "ceiling_img_s", "naive_img_s", "extract_img_s", "ratio_to_ceiling", "peak_rss_mb_n",
        "peak_rss_mb_2n", "dvc_status_s_1m", "precision"}


def test_extract_bench_on_a_folder_prints_one_json_object(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "jpg"
    folder.mkdir()
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)).save(folder / f"p{i}.jpg", quality=90)
    env = dict(os.environ, HF_HUB_OFFLINE="1", DVC_NO_ANALYTICS="1", TMPDIR=str(tmp_path))
    out = subprocess.run([sys.executable, "bench/extract.py", "--folder", str(folder), "--repeats", "1",
                          "--rows-1m", "20000", "--precision", "bf16"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert KEYS <= result.keys() and result["images"] == 6 and result["precision"] == "bf16"
    assert all(result[k] > 0 for k in KEYS - {"precision"})
    # the ratio is of the unrounded rates (to 3 decimals), the rates are rounded to 2: equal within that
    ratio, ceiling = result["extract_img_s"] / result["ceiling_img_s"], result["ceiling_img_s"]
    assert result["ratio_to_ceiling"] == pytest.approx(ratio, abs=0.005 * (1 + ratio) / ceiling + 5e-4)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("bench_extract_")]  # its work folder is removed
