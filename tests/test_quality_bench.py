"""bench/quality.py: the params of each run and the statistics of the table (no pipeline run here)."""
import importlib.util
from pathlib import Path

import click
import pytest

SPEC = importlib.util.spec_from_file_location("quality", Path(__file__).resolve().parents[1] / "bench" / "quality.py")
quality = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(quality)


def test_run_params_seeds_and_ablations():
    p = quality.run_params("random", 3)
    assert p["select.method"] == "random" and p["select.seed"] == 3 and p["train.seed"] == 3
    assert p["refine.enabled"] is False and p["refine.seed"] == 0 and p["train.curriculum"] is False
    t = quality.run_params("tripled", 2)
    assert t["select.seed"] == 0 and t["refine.seed"] == 2  # TripleD's selection is deterministic
    assert t["train.curriculum"] is True
    assert quality.run_params("tripled-nocurriculum", 0)["train.curriculum"] is False
    assert quality.run_params("tripled-norefine", 0)["refine.enabled"] is False
    assert quality.run_params("tripled-nostratify", 0)["select.stratify"] is False
    assert quality.run_params("tripled-nouncertainty", 0)["select.uncertainty_weight"] == 0
    with pytest.raises(click.BadParameter, match="unknown method"):
        quality.run_params("nope", 0)


def _run(method, seed, psnr):
    tasks = {t: dict(psnr=psnr + d, psnr_input=20.0 + d, ssim=0.8, ssim_input=0.5) for t, d in (("a", -1), ("b", 1))}
    return dict(method=method, seed=seed, samples=10, train_seconds=1.0, curve=dict(step=[], psnr=[]),
                eval=dict(overall=dict(psnr=psnr, psnr_input=20.0, ssim=0.8, ssim_input=0.5), tasks=tasks))


def test_summary_gain_retained_and_beats():
    runs = [_run("full", s, 24.0 + 0.1 * s) for s in range(5)]
    runs += [_run("random", s, v) for s, v in enumerate([21.0, 22.0, 23.0, 21.5, 22.5])]
    runs += [_run("tripled", s, v) for s, v in enumerate([23.8, 23.9, 24.0, 23.9, 23.9])]
    s = quality.summarise(runs)
    assert s["input"]["psnr_mean"] == 20.0 and s["input"]["tasks"]["a"]["psnr"] == 19.0
    assert s["full"]["gain_retained"] == 1.0
    assert s["random"]["gain_retained"] == pytest.approx(2.0 / 4.2, abs=1e-3)
    assert s["tripled"]["psnr_mean"] == pytest.approx(23.9) and s["tripled"]["n"] == 5
    assert s["tripled"]["vs_random"]["beats"] and s["tripled"]["vs_random"]["diff_db"] == pytest.approx(1.9)
    assert s["tripled"]["tasks"]["b"]["psnr"] == pytest.approx(24.9)
    # a difference inside two standard errors is not a win
    kcenter = [_run("kcenter", i, v) for i, v in enumerate([22.5, 23.0, 21.0, 22.0, 22.6])]
    close = quality.summarise(runs[5:10] + kcenter)
    assert not close["kcenter"]["vs_random"]["beats"]
    table = quality.markdown(s, ["tripled", "random", "full"], "cmd")
    assert "| tripled | 5 |" in table and "45.2 %" not in table and "100.0 %" in table
