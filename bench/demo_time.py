"""Wall time of the demo pipeline, stage by stage, beside a CPU speed reference measured in the same run,
so that slow and fast machines can be compared, with the training loop's steps/s (metrics train.json) and
the evaluate stage's Mpixel/s (test pixels restored, unseen degradations included, over the stage's wall
time, start-up included). Prints one JSON object.

    python bench/demo_time.py [--rev REV ...] [--set section.key=value ...]

Each --rev (default: the working tree) is copied into a fresh git repository and its pipeline run with
`dvc repro -s STAGE`, one stage at a time in dvc.yaml's order, so the same machine times an old and a
new version in one run. The reference: a fixed float32 matrix product and a 3x3 convolution, on the
threads torch uses.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: bench.common beside it

from bench.common import code_version, machine, make_project  # noqa: E402


def cpu_reference(seconds: float = 3.0) -> dict:
    """GFLOP/s of a 1024² float32 matrix product and of a 3x3 convolution (32 → 32 channels, 8 x 128²)."""
    torch.manual_seed(0)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    x, w = torch.randn(8, 32, 128, 128), torch.randn(32, 32, 3, 3)
    out = {}
    for name, fn, flops in (("matmul_gflops", lambda: a @ b, 2 * 1024 ** 3),
                            ("conv_gflops", lambda: torch.nn.functional.conv2d(x, w, padding=1),
                             2 * 8 * 32 * 32 * 9 * 128 * 128)):
        fn()  # warm-up
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 2:
            fn()
            n += 1
        out[name] = round(n * flops / (time.perf_counter() - start) / 1e9, 1)
    return dict(out, threads=torch.get_num_threads())


def export(rev: str | None, folder: Path) -> None:
    """The project at `rev` (a commit) into `folder`, or the working tree when rev is None."""
    if rev is None:
        make_project(folder, {})
        return
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x"], cwd=folder, input=archive, check=True)
    for path in ("dvc.lock", "metrics", "plots"):  # outputs of another run: the timing starts from nothing
        subprocess.run(["rm", "-rf", path], cwd=folder, check=True)
    git = ["git", "-c", "user.email=bench@tripled", "-c", "user.name=bench"]
    for cmd in (["git", "init", "-q"], [*git, "add", "-A"], [*git, "commit", "-qm", f"{rev}"]):
        subprocess.run(cmd, cwd=folder, check=True, capture_output=True)


def time_stages(folder: Path, sets: list[str]) -> dict:
    """Seconds per stage of `dvc repro`, in dvc.yaml's order, with `sets` (section.key=value) applied."""
    params = yaml.safe_load((folder / "params.yaml").read_text())
    for item in sets:
        key, value = item.split("=", 1)
        section, name = key.split(".", 1)
        params[section][name] = yaml.safe_load(value)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = dict(os.environ, DVC_NO_ANALYTICS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(folder))
    seconds = {}
    for stage in yaml.safe_load((folder / "dvc.yaml").read_text())["stages"]:
        start = time.perf_counter()
        done = subprocess.run(["dvc", "repro", "-s", stage], cwd=folder, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise click.ClickException(f"dvc repro -s {stage} failed in {folder}:\n{done.stderr[-3000:]}")
        seconds[stage] = round(time.perf_counter() - start, 1)
    metrics = json.loads(_metrics(folder, "eval.json").read_text())
    train = json.loads(_metrics(folder, "train.json").read_text())
    # every test sample is a data.tile square; unseen degradations are restored on the same clean tiles
    pixels = (metrics["samples"] + metrics.get("unseen", {}).get("samples", 0)) * params["data"]["tile"] ** 2
    return dict(stages=seconds, total_s=round(sum(seconds.values()), 1), psnr=metrics["overall"]["psnr"],
                psnr_input=metrics["overall"]["psnr_input"],
                train_steps_per_s=round(train["steps"] / train["seconds"], 2),
                eval_mpixel_per_s=round(pixels / 1e6 / seconds["evaluate"], 3))


def _metrics(folder: Path, name: str) -> Path:
    """metrics/all/NAME (a restorer per folder) or metrics/NAME (the layout before restorers)."""
    found = [folder / "metrics" / "all" / name, folder / "metrics" / name]
    return next(p for p in found if p.is_file())


@click.command()
@click.option("--rev", "revs", multiple=True, help="a commit to time (repeatable); default: the working tree.")
@click.option("--set", "sets", multiple=True, help="a param for every version, e.g. --set train.steps=300.")
def main(revs: tuple[str, ...], sets: tuple[str, ...]) -> None:
    """Time the demo pipeline, stage by stage, with a CPU speed reference."""
    result = dict(cpu_reference=cpu_reference(), machine=machine(), code=code_version(), sets=list(sets), runs={})
    with tempfile.TemporaryDirectory(prefix="demo_time_") as tmp:
        for k, rev in enumerate(revs or (None,)):
            name, folder = rev or "working tree", Path(tmp) / str(k)
            export(rev, folder)
            result["runs"][name] = time_stages(folder, list(sets))
            click.echo(f"{name}: {result['runs'][name]}", err=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
