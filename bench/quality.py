"""Selection quality: every method side by side on one dataset, same budget, same steps, same seeds.

    python bench/quality.py [--data-root DIR] [--layout paired|clean] [--ratio R]
                            [--methods tripled,random_task,full] [--steps N] [--seeds K | --seed-list a,b]
                            [--jobs N]
                            [--reference random_task] [--long-factor F] [--out DIR] [--eval-every N] [--set k=v]
                            [--per-task-steps N]

The project is copied into DIR/project (a git repo) and the shared stages (prepare, extract, score,
warmup) run there once; every (method, seed) is then one `dvc exp run -S ...` of the pipeline. With
--jobs N, N runs go side by side, each in its own copy of the project and with its own share of the
cores (--threads each, recorded with the run), so a run's result does not depend on what runs beside
it. Seed s sets train.seed, and select.seed / refine.seed where the method uses them: every method sees
the same seeds, and each is compared with --reference by the paired difference over them. Finished
runs (same method, seed, params and code) are kept in DIR/runs.json and not run again. Writes
DIR/quality.json, DIR/quality.md, DIR/runs.json and, with --eval-every, DIR/time_to_quality.csv.
With --per-task-steps N every run also trains one restorer per task (multi-task mode, N steps each) on
the method's subset of that task, and the report sets each task's model beside the all-in-one model.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: bench.common beside it

from bench.common import code_version, make_project, params_hash, provenance  # noqa: E402
from bench.stats import paired, seeds_needed  # noqa: E402
from tripled.selection.methods import METHODS  # noqa: E402

BASELINE = {"refine.enabled": False, "train.curriculum": False}  # a plain subset: no refine, no curriculum
TRIPLED = {"select.method": "tripled", "refine.enabled": True, "train.curriculum": True}
FLAT = 4.0  # near-flat: clean luminance std below 4 (0..255), bench/large.py's bound; 11 % of the photographs' tiles
# Method name -> params: every select.method (baselines without refine and curriculum), the ablations
# that switch off one component of TripleD each, `tripled-lq` (features of the degraded side), `-noflat`
# variants without near-flat tiles, `tripled-need` (the budget over tasks by need), and full-long (the
# full set trained --long-factor times longer: a converged reference).
VARIANTS: dict[str, dict] = {
    "tripled": TRIPLED,
    "tripled-nostratify": {**TRIPLED, "select.stratify": False},
    "tripled-norefine": {**TRIPLED, "refine.enabled": False},
    "tripled-nocurriculum": {**TRIPLED, "train.curriculum": False},
    "tripled-nouncertainty": {**TRIPLED, "select.uncertainty_weight": 0.0},
    "tripled-distinct": {**TRIPLED, "select.distinct_content": True},
    "tripled-lq": {**TRIPLED, "features.view": "lq"},
    "tripled-noflat": {**TRIPLED, "select.min_contrast": FLAT},
    "tripled-need": {**TRIPLED, "select.task_budget": "need"},
    "random_task-noflat": {"select.method": "random_task", **BASELINE, "select.min_contrast": FLAT},
    **{m: {"select.method": m, **BASELINE} for m in METHODS if m != "tripled"},
    "full-long": {"select.method": "full", **BASELINE},
}
# the methods whose subset depends on select.seed
STOCHASTIC_SELECTION = ("random", "random_task", "random_spread", "kcenter", "kcenter_blind")
LOSS_WARMUP_STEPS = 200
UPSTREAM = ["prepare", "extract", "score", "warmup"]  # shared by every run: run once, before the runs


def needs_warmup(methods: list[str]) -> bool:
    """Whether a method reads the warm-up loss: the loss baselines and the budget over tasks by need."""
    return any(VARIANTS[m]["select.method"] in ("loss", "loss_blind") or VARIANTS[m].get("select.task_budget") == "need"
               for m in methods)


def _run(cmd: list[str], cwd: Path, threads: int | None = None) -> str:
    env = dict(os.environ, DVC_NO_ANALYTICS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(cwd))
    if threads:  # torch, NumPy and SciPy take their thread counts from these
        env.update({k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise click.ClickException(f"{' '.join(cmd)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out.stdout + out.stderr


def bench_project(folder: Path, base: dict[str, object]) -> None:
    """The project in `folder` (a git repo) with the dotted `base` params (section.key: value)."""
    for stale in ("rwlock", "rwlock.lock", "lock"):  # left by an interrupted run of this bench
        (folder / ".dvc" / "tmp" / stale).unlink(missing_ok=True)
    make_project(folder, _nested(base))


def _nested(dotted: dict[str, object]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for key, value in dotted.items():
        section, name = key.split(".", 1)
        out.setdefault(section, {})[name] = value
    return out


def shared_params(data_root: str, layout: str | None, ratio: float | None, steps: int | None) -> dict[str, object]:
    """The params of every run from the bench's options (None: params.yaml's)."""
    base: dict[str, object] = {"data.root": data_root if data_root == "demo" else str(Path(data_root).resolve()),
                               "restorers.all": {"tasks": "all"}}  # one all-in-one restorer per run
    for key, value in (("data.layout", layout), ("select.ratio", ratio), ("train.steps", steps)):
        if value is not None:
            base[key] = value
    if steps is not None:
        base["train.steps_per"] = "run"  # --steps counts steps in all, whatever params.yaml counts
    return base


def run_params(method: str, seed: int, steps: int = 0, long_factor: int = 5) -> dict[str, object]:
    """The -S overrides of one run: the method's params and the seeds it uses (`steps`: the base
    train.steps, which full-long multiplies by `long_factor`, in the base's train.steps_per)."""
    if method not in VARIANTS:
        raise click.BadParameter(f"unknown method {method!r}; known: {', '.join(VARIANTS)}", param_hint="--methods")
    p = dict(VARIANTS[method], **{"train.seed": seed})
    p["select.seed"] = seed if p["select.method"] in STOCHASTIC_SELECTION else 0
    p["refine.seed"] = seed if p["refine.enabled"] else 0
    if method == "full-long":
        p["train.steps"] = long_factor * steps
    return p


def run_config(project: Path, overrides: dict[str, object]) -> dict:
    """The params one run sees: the project's params.yaml with the run's -S overrides."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    for section, values in _nested(overrides).items():
        params.setdefault(section, {}).update(values)
    return params


def one_run(project: Path, method: str, seed: int, overrides: dict[str, object], threads: int, code: dict) -> dict:
    """`dvc exp run` of the whole pipeline with this method and seed, on `threads` threads; its metrics."""
    sets = [a for k, v in overrides.items() for a in ("-S", f"{k}={json.dumps(v)}")]
    _run(["git", "checkout", "--", "params.yaml"], project)  # -S of the previous run must not linger
    started = time.perf_counter()
    _run(["dvc", "exp", "run", *sets], project, threads)
    wall = time.perf_counter() - started
    train = json.loads((project / "metrics/all/train.json").read_text())
    curve = pd.DataFrame(columns=["step", "psnr"])
    for name in ("psnr", "val_psnr"):  # held-out test PSNR; with train.keep_best, the judged PSNR
        tsv = project / f"metrics/all/dvclive/plots/metrics/{name}.tsv"
        if tsv.is_file():
            table = pd.read_csv(tsv, sep="\t")[["step", name]]
            curve = table if curve.empty else curve.merge(table, on="step", how="outer")
    curve = curve.astype(object).where(curve.notna(), None)  # JSON null, not NaN, where a curve has no value
    params = run_config(project, overrides)
    prov = dict(provenance(params, code), threads=threads)
    per_task = {path.parent.name: json.loads(path.read_text()) for path in sorted(project.glob("metrics/*/eval.json"))
                if path.parent.name != "all" and path.parent.name in params["restorers"]}
    return dict(method=method, seed=seed, eval=json.loads((project / "metrics/all/eval.json").read_text()),
                train_seconds=train.get("seconds"), samples=train["samples"], wall_seconds=round(wall, 1),
                **({"kept_step": train["kept_step"]} if "kept_step" in train else {}),
                curve=curve.to_dict("list"), provenance=prov, **({"per_task": per_task} if per_task else {}))


def run_all(project: Path, todo: list[tuple[str, int, dict]], jobs: int, threads: int, code: dict,
            done: list[dict], save) -> list[dict]:
    """The runs of `todo` (method, seed, overrides), `jobs` at a time, each in its own project copy."""
    _run(["dvc", "repro", *UPSTREAM], project)  # once, on all cores, before any copy is made
    copies = [project]
    for j in range(1, min(jobs, len(todo))):
        copy = project.with_name(f"{project.name}-{j}")
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(project, copy, symlinks=True)  # outputs and dvc.lock too: no stage reruns there
        copies.append(copy)
    free, lock, runs = list(copies), threading.Lock(), list(done)

    def work(item: tuple[str, int, dict]) -> None:
        method, seed, overrides = item
        with lock:
            folder = free.pop()
        try:
            r = one_run(folder, method, seed, overrides, threads, code)
        finally:
            with lock:
                free.append(folder)
        with lock:
            runs.append(r)
            save(runs)
        click.echo(f"{method} seed {seed}: PSNR {r['eval']['overall']['psnr']:.3f} dB, "
                   f"train {r['train_seconds']} s, run {r['wall_seconds']} s", err=True)

    with ThreadPoolExecutor(len(copies)) as pool:
        list(pool.map(work, todo))  # list(): re-raise the first failure
    return runs


def _mean_std(values: list[float]) -> tuple[float, float]:
    v = np.asarray(values, np.float64)
    return round(float(v.mean()), 4), round(float(v.std(ddof=1)) if len(v) > 1 else 0.0, 4)


def summarise(runs: list[dict], reference: str = "random_task") -> dict:
    """Per method: mean and std over seeds of PSNR/SSIM per task and over tasks; gain retained against
    `full` and `full-long` and the PSNR ratio to them; how many (seed, task) results beat their degraded
    input; the paired difference to `reference` over the seeds both ran (beats = mean > 2 SE) and the
    seeds that took. The degraded input's figures under `input`."""
    first = runs[0]["eval"]
    tasks = sorted(first["tasks"])
    inputs = {t: dict(psnr=first["tasks"][t]["psnr_input"], ssim=first["tasks"][t]["ssim_input"]) for t in tasks}
    out: dict = dict(input=dict(psnr_mean=first["overall"]["psnr_input"], ssim_mean=first["overall"]["ssim_input"],
                                tasks=inputs), reference=reference)
    if "unseen" in first:
        out["input"]["unseen"] = dict(psnr_mean=first["unseen"]["overall"]["psnr_input"],
                                      tasks={t: b["psnr_input"] for t, b in sorted(first["unseen"]["tasks"].items())})
    by_method: dict[str, list[dict]] = {}
    for r in sorted(runs, key=lambda r: r["seed"]):
        by_method.setdefault(r["method"], []).append(r)
    psnr_by_seed = {m: {r["seed"]: r["eval"]["overall"]["psnr"] for r in rs} for m, rs in by_method.items()}
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
        gains = [r["eval"]["tasks"][t]["psnr_gain"] > 0 for r in rs for t in tasks]
        m["above_input"] = dict(count=int(sum(gains)), of=len(gains))
        if all("unseen" in r["eval"] for r in rs):  # degradations never trained on, scored apart
            m["unseen"] = dict(zip(("psnr_mean", "psnr_std"), _mean_std([r["eval"]["unseen"]["overall"]["psnr"]
                                                                        for r in rs])))
            m["unseen"]["tasks"] = {t: _mean_std([r["eval"]["unseen"]["tasks"][t]["psnr"] for r in rs])[0]
                                    for t in sorted(rs[0]["eval"]["unseen"]["tasks"])}
        out[method] = m
    base = out["input"]["psnr_mean"]
    for name in by_method:
        m = out[name]
        for ref in ("full", "full-long"):
            if ref in out and out[ref]["psnr_mean"] != base:
                key = "" if ref == "full" else "_long"
                m[f"gain_retained{key}"] = round((m["psnr_mean"] - base) / (out[ref]["psnr_mean"] - base), 4)
                m[f"psnr_ratio{key}"] = round(m["psnr_mean"] / out[ref]["psnr_mean"], 4)
        if "full" in out and out["full"]["psnr_std"] > 0:
            m["std_to_full"] = round(m["psnr_std"] / out["full"]["psnr_std"], 2)
        if reference in out and name != reference:
            m["vs_reference"] = dict(paired(psnr_by_seed[name], psnr_by_seed[reference]),
                                     seeds_needed=seeds_needed(psnr_by_seed[name], psnr_by_seed[reference]))
            if "unseen" in m and "unseen" in out[reference]:
                m["unseen"]["vs_reference"] = paired(*({r["seed"]: r["eval"]["unseen"]["overall"]["psnr"]
                                                        for r in by_method[k]} for k in (name, reference)))
    return out


def per_task_restorers(tasks: list[str], steps: int) -> dict[str, dict]:
    """Multi-task mode beside the all-in-one restorer: one restorer per task, trained `steps` steps."""
    return {"all": {"tasks": "all"}, **{t: {"tasks": [t], "train": {"steps": steps}} for t in tasks}}


def summarise_per_task(runs: list[dict]) -> dict:
    """Per method and task: the task's own model against the all-in-one model on that task's test images,
    mean ± std over seeds and their paired difference (per-task − all-in-one ± SE)."""
    out: dict = {}
    for r in sorted(runs, key=lambda r: r["seed"]):
        for task, ev in r.get("per_task", {}).items():
            row = out.setdefault(r["method"], {}).setdefault(task, dict(seeds=[], all=[], own=[]))
            row["seeds"].append(r["seed"])
            row["all"].append(r["eval"]["tasks"][task]["psnr"])
            row["own"].append(ev["tasks"][task]["psnr"])
            row["input"] = ev["tasks"][task]["psnr_input"]
    for rows in out.values():
        for task, row in rows.items():
            seeds, own, all_ = row.pop("seeds"), row.pop("own"), row.pop("all")
            row["all_in_one"], row["all_in_one_std"] = _mean_std(all_)
            row["per_task"], row["per_task_std"] = _mean_std(own)
            row["vs_all_in_one"] = paired(dict(zip(seeds, own)), dict(zip(seeds, all_)))
    return out


def per_task_markdown(table: dict, steps: int) -> str:
    lines = ["", f"Multi-task mode: each task's own restorer ({steps} steps on the method's subset of that task) "
             "against the all-in-one restorer, on that task's test images (PSNR dB, mean ± std over seeds):", "",
             "| method | task | input | all-in-one | per-task | per-task − all-in-one, paired (dB) |",
             "|---|---|---|---|---|---|"]
    for method, rows in table.items():
        for task, row in sorted(rows.items()):
            vs = row["vs_all_in_one"]
            lines.append(f"| {method} | {task} | {row['input']:.2f} | {row['all_in_one']:.2f} ± "
                         f"{row['all_in_one_std']:.2f} | {row['per_task']:.2f} ± {row['per_task_std']:.2f} | "
                         f"{vs['diff_db']:+.2f} ± {vs['se_db']:.2f} (n {vs['n']}) |")
    return "\n".join(lines) + "\n"


def _vs_text(vs: dict | None) -> str:
    return "–" if not vs else f"{vs['diff_db']:+.2f} ± {vs['se_db']:.2f} ({'beats' if vs['beats'] else 'no'})"


def markdown(summary: dict, methods: list[str], command: str) -> str:
    inp, ref = summary["input"], summary["reference"]
    tasks = list(inp["tasks"])
    head = ["method", "n", *[f"{t} PSNR" for t in tasks], "PSNR mean ± std", "SSIM mean", "gain retained",
            "gain vs full-long", "PSNR ratio", f"vs {ref}, paired (dB)", "seeds needed", "tasks > input",
            "std / full std", "train s"]
    lines = [f"Command: `{command}`", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines.append("| input (degraded) | – | " + " | ".join(f"{inp['tasks'][t]['psnr']:.2f}" for t in tasks)
                 + f" | {inp['psnr_mean']:.2f} | {inp['ssim_mean']:.3f} | 0 % | 0 % | – | – | – | – | – | – |")

    def pct(m: dict, key: str) -> str:
        return f"{100 * m[key]:.1f} %" if key in m else "–"

    for name in methods:
        m = summary[name]
        vs = m.get("vs_reference")
        needed = "–" if not vs else str(vs["seeds_needed"] or f"> {vs['n']}")
        cells = [f"{m['tasks'][t]['psnr']:.2f} ± {m['tasks'][t]['psnr_std']:.2f}" for t in tasks]
        lines.append(f"| {name} | {m['n']} | " + " | ".join(cells)
                     + f" | {m['psnr_mean']:.2f} ± {m['psnr_std']:.2f} | {m['ssim_mean']:.3f}"
                     + f" | {pct(m, 'gain_retained')} | {pct(m, 'gain_retained_long')} | {pct(m, 'psnr_ratio')}"
                     + f" | {_vs_text(vs)} | {needed} | {m['above_input']['count']}/{m['above_input']['of']}"
                     + f" | {m.get('std_to_full', '–')} | {m['train_seconds']:.0f} |")
    lines += ["", "PSNR in dB per test image, mean over its task's images; mean ± std over seeds. gain retained = "
              "(PSNR − PSNR_input) / (PSNR_full − PSNR_input), against full at the same steps and against "
              "full-long; PSNR ratio = PSNR / PSNR_full. Paired: the mean over seeds of (method − "
              f"{ref}) at the same seed ± its standard error; beats = more than 2 standard errors. seeds "
              "needed: the fewest seeds from which on it beats. tasks > input: (seed, task) results above the "
              "degraded input. train s = training loop wall time per run."]
    if "unseen" in inp:  # degradations no method trained on
        unseen = list(inp["unseen"]["tasks"])
        lines += ["", "Degradations never trained on (evaluate.unseen), on the clean test images:", "",
                  "| method | " + " | ".join(f"{t} PSNR" for t in unseen) + f" | PSNR mean ± std | vs {ref}, paired "
                  "(dB) |", "|" + "---|" * (len(unseen) + 3),
                  "| input (degraded) | " + " | ".join(f"{inp['unseen']['tasks'][t]:.2f}" for t in unseen)
                  + f" | {inp['unseen']['psnr_mean']:.2f} | – |"]
        for name in methods:
            u = summary[name].get("unseen")
            if u:
                lines.append(f"| {name} | " + " | ".join(f"{u['tasks'][t]:.2f}" for t in unseen)
                             + f" | {u['psnr_mean']:.2f} ± {u['psnr_std']:.2f} | {_vs_text(u.get('vs_reference'))} |")
    return "\n".join(lines) + "\n"


def curves(runs: list[dict]) -> pd.DataFrame:
    """Held-out PSNR versus step, mean over seeds, one column per method (empty without --eval-every)."""
    frames = [pd.DataFrame(r["curve"]).assign(method=r["method"]) for r in runs if r["curve"].get("step")]
    if not frames:
        return pd.DataFrame(columns=["step"])
    table = pd.concat(frames).astype({"psnr": float})
    return table.groupby(["step", "method"])["psnr"].mean().unstack("method").round(4).reset_index()


def pick_seeds(count: int, listed: str | None) -> list[int]:
    """The seeds to run: 0 .. count-1, or the comma-separated `listed` ones (e.g. to rerun the few seeds
    where one setting's run differs from another's)."""
    if listed is None:
        if count < 1:
            raise click.BadParameter("need at least one seed", param_hint="--seeds")
        return list(range(count))
    try:
        seeds = sorted({int(s) for s in listed.split(",") if s.strip()})
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {listed!r}", param_hint="--seed-list")
    if not seeds or seeds[0] < 0:
        raise click.BadParameter(f"expected seeds >= 0, got {listed!r}", param_hint="--seed-list")
    return seeds


@click.command()
@click.option("--data-root", default="demo", show_default=True, help="dataset folder, or 'demo'.")
@click.option("--layout", type=click.Choice(["paired", "clean"]), default=None,
              help="data.layout (default: params.yaml).")
@click.option("--ratio", type=float, default=None, help="select.ratio (default: params.yaml).")
@click.option("--methods", default="tripled,random_task,full", show_default=True,
              help=f"comma-separated, of: {', '.join(VARIANTS)}.")
@click.option("--reference", default="random_task", show_default=True,
              help="the method every other is compared with, seed by seed.")
@click.option("--steps", type=int, default=None,
              help="train.steps in all (steps_per: run) for every run (default: params.yaml's).")
@click.option("--long-factor", type=int, default=5, show_default=True, help="full-long trains this many times longer.")
@click.option("--seeds", type=int, default=5, show_default=True, help="seeds per method (0 .. K-1).")
@click.option("--seed-list", default=None, help="only these seeds (comma-separated), instead of 0 .. K-1.")
@click.option("--jobs", type=int, default=1, show_default=True, help="runs side by side.")
@click.option("--threads", type=int, default=None, help="threads per run (default: the cores / --jobs).")
@click.option("--out", "out_dir", default="bench/results/quality", show_default=True, type=click.Path(path_type=Path))
@click.option("--eval-every", type=int, default=0, show_default=True,
              help="held-out PSNR every N steps (time-to-quality curves); 0 = off.")
@click.option("--set", "extra", multiple=True, help="further params for every run, e.g. --set data.tile=128.")
@click.option("--per-task-steps", type=int, default=0, show_default=True,
              help="also train one restorer per task (multi-task mode), this many steps each; 0 = off.")
def main(data_root, layout, ratio, methods, reference, steps, long_factor, seeds, seed_list, jobs, threads, out_dir,
         eval_every, extra, per_task_steps) -> None:
    """Compare selection methods side by side through the real DVC pipeline."""
    names = [m.strip() for m in methods.split(",") if m.strip()]
    for m in [*names, reference]:
        run_params(m, 0)  # unknown names fail before any work
    seed_values = pick_seeds(seeds, seed_list)
    if jobs < 1:
        raise click.BadParameter("need at least one job")
    threads = threads or max(1, len(os.sched_getaffinity(0)) // jobs)
    base = shared_params(data_root, layout, ratio, steps)
    if eval_every:
        base["train.eval_every"] = eval_every
        base["train.log_every"] = math.gcd(eval_every, 10)
    if needs_warmup(names):
        base["warmup.steps"] = LOSS_WARMUP_STEPS  # --set overrides
    for item in extra:
        key, _, value = item.partition("=")
        if "." not in key or not _:
            raise click.BadParameter(f"expected section.key=value, got {item!r}", param_hint="--set")
        base[key] = yaml.safe_load(value)
    out_dir.mkdir(parents=True, exist_ok=True)
    project = (out_dir / "project").resolve()
    code = code_version()  # of the code copied now: commits made while the bench runs do not count
    bench_project(project, base)
    if per_task_steps:  # the index's tasks, which prepare writes (upstream of every run: done once anyway)
        _run(["dvc", "repro", "prepare"], project)
        tasks = sorted(pd.read_parquet(project / "data/index.parquet")["task"].unique())
        base.update({f"restorers.{name}": entry for name, entry in per_task_restorers(tasks, per_task_steps).items()})
        bench_project(project, base)
    base_steps = yaml.safe_load((project / "params.yaml").read_text())["train"]["steps"]
    todo = []  # seed-major: an interrupted bench still has every method at some seeds
    for seed in seed_values:
        for m in names:
            overrides = run_params(m, seed, base_steps, long_factor)
            todo.append((m, seed, overrides, params_hash(run_config(project, overrides))))
    runs_path = out_dir / "runs.json"
    previous = json.loads(runs_path.read_text()) if runs_path.is_file() else []
    # a run is kept only if it ran the same code with the same params
    done = [r for r in previous if r.get("provenance", {}).get("code_sha256") == code["code_sha256"]
            and any((r["method"], r["seed"], r["provenance"].get("params_sha256")) == (m, s, h) for m, s, _, h in todo)]
    finished = {(r["method"], r["seed"]) for r in done}
    # runs of other methods or seeds (an earlier invocation's) stay in runs.json, out of this report
    planned = {(m, s) for m, s, _, _ in todo}
    others = [r for r in previous if (r["method"], r["seed"]) not in planned]
    todo = [(m, s, o) for m, s, o, _ in todo if (m, s) not in finished]
    click.echo(f"{len(done)} runs kept from {runs_path}, {len(todo)} to run, {jobs} at a time on {threads} "
               "thread(s) each", err=True)
    command = "python bench/quality.py " + " ".join(sys.argv[1:])
    started = time.perf_counter()

    def save(rs: list[dict]) -> None:
        runs_path.write_text(json.dumps(others + rs, indent=1) + "\n")

    runs = run_all(project, todo, jobs, threads, code, done, save) if todo else done
    runs = [r for r in runs if r["method"] in names]
    summary = summarise(runs, reference)
    summary["meta"] = dict(command=command, params=base, jobs=jobs, threads=threads, long_factor=long_factor,
                           wall_seconds=round(time.perf_counter() - started, 1),
                           provenance=provenance(yaml.safe_load((project / "params.yaml").read_text()), code))
    (out_dir / "quality.json").write_text(json.dumps(summary, indent=2) + "\n")
    table = markdown(summary, names, command)
    (out_dir / "quality.md").write_text(table + f"\nWall time of this invocation: {summary['meta']['wall_seconds']:.0f}"
                                        f" s ({jobs} job(s) × {threads} thread(s)).\n")
    if eval_every:
        curves(runs).to_csv(out_dir / "time_to_quality.csv", index=False)
    if per_task_steps:
        summary["per_task"] = summarise_per_task(runs)
        (out_dir / "quality.json").write_text(json.dumps(summary, indent=2) + "\n")
        table += per_task_markdown(summary["per_task"], per_task_steps)
        (out_dir / "quality.md").write_text(table + f"\nWall time of this invocation: "
                                            f"{summary['meta']['wall_seconds']:.0f} s ({jobs} job(s) × {threads} "
                                            "thread(s)).\n")
    click.echo(table)


if __name__ == "__main__":
    main()
