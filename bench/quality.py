"""Selection quality: every method side by side on one dataset, same budget, same steps, same seeds.

    python bench/quality.py [--data-root DIR] [--layout paired|clean] [--ratio R]
                            [--methods tripled,random,full,...] [--steps N] [--seeds K] [--out DIR]

The project is copied into DIR/project (a git repo); every (method, seed) is one `dvc exp run -S ...`
of the real pipeline there, so prepare/extract/score run once and are cached, and a rerun after an
interruption restores finished runs from DVC's run cache. Seed s sets train.seed, and select.seed /
refine.seed where the method uses them. Writes DIR/quality.json, DIR/quality.md, DIR/runs.json and,
with --eval-every, DIR/time_to_quality.csv (held-out PSNR versus step, mean over seeds).
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import click
import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: bench.common beside it

from bench.common import make_project, provenance  # noqa: E402
from tripled.selection.methods import METHODS  # noqa: E402

BASELINE = {"refine.enabled": False, "train.curriculum": False}  # a naive subset: no refine, no curriculum
TRIPLED = {"select.method": "tripled", "refine.enabled": True, "train.curriculum": True}
# Method name -> params: every select.method (baselines without refine and curriculum), and the ablations
# that switch off one component of TripleD each.
VARIANTS: dict[str, dict] = {
    "tripled": TRIPLED,
    "tripled-nostratify": {**TRIPLED, "select.stratify": False},
    "tripled-norefine": {**TRIPLED, "refine.enabled": False},
    "tripled-nocurriculum": {**TRIPLED, "train.curriculum": False},
    "tripled-nouncertainty": {**TRIPLED, "select.uncertainty_weight": 0.0},
    **{m: {"select.method": m, **BASELINE} for m in METHODS if m != "tripled"},
}
STOCHASTIC_SELECTION = ("random", "kcenter")  # methods whose subset depends on select.seed
LOSS_WARMUP_STEPS = 200


def _run(cmd: list[str], cwd: Path) -> str:
    env = dict(os.environ, DVC_NO_ANALYTICS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(cwd))
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise click.ClickException(f"{' '.join(cmd)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out.stdout + out.stderr


def bench_project(folder: Path, base: dict[str, object]) -> None:
    """The project in `folder` (a git repo) with the dotted `base` params (section.key: value)."""
    for stale in ("rwlock", "rwlock.lock", "lock"):  # left by an interrupted run of this bench
        (folder / ".dvc" / "tmp" / stale).unlink(missing_ok=True)
    overrides: dict[str, dict] = {}
    for dotted, value in base.items():
        section, key = dotted.split(".", 1)
        overrides.setdefault(section, {})[key] = value
    make_project(folder, overrides)


def run_params(method: str, seed: int) -> dict[str, object]:
    """The -S overrides of one run: the method's params and the seeds it uses."""
    if method not in VARIANTS:
        raise click.BadParameter(f"unknown method {method!r}; known: {', '.join(VARIANTS)}", param_hint="--methods")
    p = dict(VARIANTS[method], **{"train.seed": seed})
    p["select.seed"] = seed if p["select.method"] in STOCHASTIC_SELECTION else 0
    p["refine.seed"] = seed if p["refine.enabled"] else 0
    return p


def one_run(project: Path, method: str, seed: int) -> dict:
    """`dvc exp run` of the whole pipeline with this method and seed; its metrics."""
    sets = [a for k, v in run_params(method, seed).items() for a in ("-S", f"{k}={json.dumps(v)}")]
    _run(["git", "checkout", "--", "params.yaml"], project)  # -S of the previous run must not linger
    started = time.perf_counter()
    _run(["dvc", "exp", "run", *sets], project)
    wall = time.perf_counter() - started
    result = json.loads((project / "metrics/eval.json").read_text())
    train = json.loads((project / "metrics/train.json").read_text())
    curve = pd.read_csv(project / "metrics/psnr_curve.csv")
    params = yaml.safe_load((project / "params.yaml").read_text())  # as the run saw them (-S applied)
    return dict(method=method, seed=seed, eval=result, train_seconds=train.get("seconds"), samples=train["samples"],
                wall_seconds=round(wall, 1), curve=curve.to_dict("list"), provenance=provenance(params))


def _mean_std(values: list[float]) -> tuple[float, float]:
    v = np.asarray(values, np.float64)
    return round(float(v.mean()), 4), round(float(v.std(ddof=1)) if len(v) > 1 else 0.0, 4)


def summarise(runs: list[dict]) -> dict:
    """Per method: mean and std over seeds of PSNR/SSIM per task and over tasks, gain retained, training
    time, and the comparison with random (beats = difference of means > 2 standard errors);
    the degraded input's figures under `input`."""
    first = runs[0]["eval"]
    tasks = sorted(first["tasks"])
    inputs = {t: dict(psnr=first["tasks"][t]["psnr_input"], ssim=first["tasks"][t]["ssim_input"]) for t in tasks}
    out: dict = dict(input=dict(psnr_mean=first["overall"]["psnr_input"], ssim_mean=first["overall"]["ssim_input"],
                                tasks=inputs))
    by_method: dict[str, list[dict]] = {}
    for r in runs:
        by_method.setdefault(r["method"], []).append(r)
    for method, rs in by_method.items():
        m = dict(n=len(rs), seeds=[r["seed"] for r in rs], samples=rs[0]["samples"], tasks={})
        for t in tasks:
            psnr, psnr_sd = _mean_std([r["eval"]["tasks"][t]["psnr"] for r in rs])
            ssim, ssim_sd = _mean_std([r["eval"]["tasks"][t]["ssim"] for r in rs])
            m["tasks"][t] = dict(psnr=psnr, psnr_std=psnr_sd, ssim=ssim, ssim_std=ssim_sd)
        m["psnr_mean"], m["psnr_std"] = _mean_std([r["eval"]["overall"]["psnr"] for r in rs])
        m["ssim_mean"], m["ssim_std"] = _mean_std([r["eval"]["overall"]["ssim"] for r in rs])
        m["train_seconds"], m["train_seconds_std"] = _mean_std([r["train_seconds"] for r in rs])
        m["psnr_runs"] = [round(r["eval"]["overall"]["psnr"], 4) for r in rs]
        out[method] = m
    base = out["input"]["psnr_mean"]
    for name in by_method:
        m = out[name]
        if "full" in out and out["full"]["psnr_mean"] != base:
            m["gain_retained"] = round((m["psnr_mean"] - base) / (out["full"]["psnr_mean"] - base), 4)
        if "random" in out:
            r = out["random"]
            diff = m["psnr_mean"] - r["psnr_mean"]
            se = math.sqrt(m["psnr_std"] ** 2 / m["n"] + r["psnr_std"] ** 2 / r["n"])
            m["vs_random"] = dict(diff_db=round(diff, 4), se_db=round(se, 4), beats=bool(diff > 2 * se))
    return out


def markdown(summary: dict, methods: list[str], command: str) -> str:
    inp = summary["input"]
    tasks = list(inp["tasks"])
    head = ["method", "n", *[f"{t} PSNR" for t in tasks], "PSNR mean", "SSIM mean", "gain retained",
            "vs random (dB, beats?)", "train s"]
    lines = [f"Command: `{command}`", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines.append("| input (degraded) | – | " + " | ".join(f"{inp['tasks'][t]['psnr']:.2f}" for t in tasks)
                 + f" | {inp['psnr_mean']:.2f} | {inp['ssim_mean']:.3f} | 0 % | – | – |")
    for name in methods:
        m = summary[name]
        vs = m.get("vs_random")
        vs_text = "–" if name == "random" or not vs else \
            f"{vs['diff_db']:+.2f} ± {vs['se_db']:.2f} ({'yes' if vs['beats'] else 'no'})"
        gain = f"{100 * m['gain_retained']:.1f} %" if "gain_retained" in m else "–"
        cells = [f"{m['tasks'][t]['psnr']:.2f} ± {m['tasks'][t]['psnr_std']:.2f}" for t in tasks]
        lines.append(f"| {name} | {m['n']} | " + " | ".join(cells)
                     + f" | {m['psnr_mean']:.2f} ± {m['psnr_std']:.2f} | {m['ssim_mean']:.3f} ± {m['ssim_std']:.3f}"
                     + f" | {gain} | {vs_text} | {m['train_seconds']:.0f} |")
    lines += ["", "PSNR in dB per test image, mean over its task's images; mean ± std over seeds (SSIM per task in "
              "quality.json). gain retained = (PSNR_method − PSNR_input) / (PSNR_full − PSNR_input); "
              "beats = difference of means > 2 × its standard error. train s = training loop wall time per run."]
    return "\n".join(lines) + "\n"


def curves(runs: list[dict]) -> pd.DataFrame:
    """Held-out PSNR versus step, mean over seeds, one column per method (empty without --eval-every)."""
    frames = [pd.DataFrame(r["curve"]).assign(method=r["method"]) for r in runs if r["curve"].get("step")]
    if not frames:
        return pd.DataFrame(columns=["step"])
    return pd.concat(frames).groupby(["step", "method"])["psnr"].mean().unstack("method").round(4).reset_index()


@click.command()
@click.option("--data-root", default="demo", show_default=True, help="dataset folder, or 'demo'.")
@click.option("--layout", type=click.Choice(["paired", "clean"]), default=None,
              help="data.layout (default: params.yaml).")
@click.option("--ratio", type=float, default=None, help="select.ratio (default: params.yaml).")
@click.option("--methods", default="tripled,random,full", show_default=True,
              help=f"comma-separated, of: {', '.join(VARIANTS)}.")
@click.option("--steps", type=int, default=None, help="train.steps for every run (default: params.yaml).")
@click.option("--seeds", type=int, default=5, show_default=True, help="seeds per method (0 .. K-1).")
@click.option("--out", "out_dir", default="bench/results/quality", show_default=True, type=click.Path(path_type=Path))
@click.option("--eval-every", type=int, default=0, show_default=True,
              help="held-out PSNR every N steps (time-to-quality curves); 0 = off.")
@click.option("--set", "extra", multiple=True, help="further params for every run, e.g. --set data.tile=128.")
def main(data_root, layout, ratio, methods, steps, seeds, out_dir, eval_every, extra) -> None:
    """Compare selection methods side by side through the real DVC pipeline."""
    names = [m.strip() for m in methods.split(",") if m.strip()]
    for m in names:
        run_params(m, 0)  # unknown names fail before any work
    if seeds < 1:
        raise click.BadParameter("need at least one seed", param_hint="--seeds")
    base: dict[str, object] = {"data.root": data_root if data_root == "demo" else str(Path(data_root).resolve())}
    for key, value in (("data.layout", layout), ("select.ratio", ratio), ("train.steps", steps)):
        if value is not None:
            base[key] = value
    if eval_every:
        base["train.eval_every"] = eval_every
        base["train.log_every"] = math.gcd(eval_every, 10)
    if "loss" in names:
        base["warmup.steps"] = LOSS_WARMUP_STEPS  # the loss baseline needs the warm-up loss (--set overrides)
    for item in extra:
        key, _, value = item.partition("=")
        if "." not in key or not _:
            raise click.BadParameter(f"expected section.key=value, got {item!r}", param_hint="--set")
        base[key] = yaml.safe_load(value)
    out_dir.mkdir(parents=True, exist_ok=True)
    project = (out_dir / "project").resolve()
    bench_project(project, base)
    command = "python bench/quality.py " + " ".join(sys.argv[1:])
    started = time.perf_counter()
    runs = []
    for seed in range(seeds):  # seed-major: an interrupted bench still has every method at some seeds
        for m in names:
            r = one_run(project, m, seed)
            runs.append(r)
            click.echo(f"{m} seed {seed}: PSNR {r['eval']['overall']['psnr']:.3f} dB, "
                       f"train {r['train_seconds']} s, run {r['wall_seconds']} s", err=True)
            (out_dir / "runs.json").write_text(json.dumps(runs, indent=1) + "\n")
    summary = summarise(runs)
    summary["meta"] = dict(command=command, params=base, wall_seconds=round(time.perf_counter() - started, 1),
                           provenance=provenance(yaml.safe_load((project / "params.yaml").read_text())))
    (out_dir / "quality.json").write_text(json.dumps(summary, indent=2) + "\n")
    table = markdown(summary, names, command)
    (out_dir / "quality.md").write_text(table + f"\nWall time of all runs: {summary['meta']['wall_seconds']:.0f} s.\n")
    if eval_every:
        curves(runs).to_csv(out_dir / "time_to_quality.csv", index=False)
    click.echo(table)


if __name__ == "__main__":
    main()
