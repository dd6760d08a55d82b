"""Stage train: a restorer trained on the distilled set with the two-stage curriculum.

Several GPUs (or CPU processes): torchrun --nproc_per_node N stages/train.py; rank 0 writes."""
import copy
import os
import time
from contextlib import contextmanager
from pathlib import Path

import click
import torch
from dvclive import Live

from tripled.data.distilled import DistilledSet
from tripled.data.index import load_index
from tripled.device import pick_device, use_available_cores
from tripled.evaluation.evaluate import evaluate, held_out, left_out, summarise
from tripled.publish import atomic, write_json
from tripled.restorers import read_restorer, restorer_section
from tripled.stage import StageCommand, for_restorer, index_option, params_option, path_option, restorer_option
from tripled.training.distributed import launched
from tripled.training.loop import run_fingerprint, train
from tripled.training.params import ModelParams, TrainParams

CURVES = ("loss", "lr", "stage", "psnr", "val_psnr")


@contextmanager
def live_curves(folder: Path):
    """A function that logs a row of the training curve to dvclive as it is made, so that `dvc plots show`
    draws the curves while training runs. The log starts afresh (train replays a resumed run's rows)."""
    if int(os.environ.get("RANK", "0")):  # under torchrun, rank 0 alone writes
        yield None
        return
    # dvc.yaml declares the plots; dvclive must neither edit it nor save an experiment of its own.
    with Live(str(folder), dvcyaml=None, save_dvc_exp=False) as live:
        def log(row: dict) -> None:
            live.step = row["step"]
            for name in CURVES:
                if name in row:
                    live.log_metric(name, row[name])
            live.make_summary()

        yield log


@click.command(cls=StageCommand)
@params_option("'model', 'train', 'restorers', 'data'")
@path_option("--data", "data_path", "data/distilled/{restorer}")
@path_option("--out", "out", "models/{restorer}")
@path_option("--metrics", "metrics_dir", "metrics/{restorer}",
             "train.json, and the curves (loss, lr, stage, held-out psnr) in dvclive/plots/metrics/*.tsv.")
@index_option("held-out tiles for the PSNR-versus-step curve (train.eval_every > 0).")
@restorer_option()
def main(params_path: str, data_path: Path, out: Path, metrics_dir: Path, index_path: Path, restorer: str) -> None:
    """Train model.arch on the distilled set; checkpoints every train.checkpoint_every steps and resumes.

    With DistributedDataParallel: torchrun --nproc_per_node N stages/train.py [options]."""
    use_available_cores()
    data_path, out, metrics_dir = (for_restorer(x, restorer) for x in (data_path, out, metrics_dir))
    mp = restorer_section(ModelParams, "model", restorer, params_path)
    p = restorer_section(TrainParams, "train", restorer, params_path)
    ds = DistilledSet(data_path, memory_limit=p.in_memory_mb << 20)
    tasks = ds.manifest["task"].nunique()
    if p.steps_per == "task":
        click.echo(f"train: {p.steps} steps per task x {tasks} tasks")
    p = p.for_tasks(tasks)
    fingerprint = run_fingerprint(mp, p, data_path / "manifest.parquet", ds.attrs)
    validating = [0.0]

    def scorer(rows):
        def psnr(model: torch.nn.Module) -> float:
            t = time.perf_counter()
            value = summarise(evaluate(copy.deepcopy(model).cpu(), rows, progress=False))["overall"]["psnr"]
            validating[0] += time.perf_counter() - t
            return value
        return psnr

    validate = judge = None
    if p.eval_every:
        index = read_restorer(restorer, params_path).rows(load_index(index_path, params_path), restorer)
        validate = scorer(held_out(index, p.eval_samples, p.seed))
        if p.keep_best:
            rest = left_out(index, ds.manifest["id"], p.eval_samples, p.seed)
            judge = scorer(rest) if len(rest) else None
            click.echo(f"train: keep_best judges on {len(rest)} training tiles left out of the set" if len(rest)
                       else "train: keep_best: no training tile is left out of the set; the last weights are kept")

    (out / "restorer.pt").unlink(missing_ok=True)  # while this run trains, no older result reads as its result
    started = time.perf_counter()
    with launched(cuda=pick_device(p.device).type == "cuda") as world, live_curves(metrics_dir / "dvclive") as log:
        model, curve = train(ds, mp, p, out / "checkpoints" / "last.pt", fingerprint, validate=validate,
                             judge=judge, on_log=log)
    if not world.main:
        return
    seconds = time.perf_counter() - started - validating[0]
    with atomic(out / "restorer.pt") as tmp:
        torch.save(model.state_dict(), tmp)
    write_json(out / "restorer.json", dict(arch=mp.arch, kwargs=mp.kwargs))
    # seconds: wall time of this run's training loop without the PSNR curve (a resumed run: its own part)
    summary = dict(steps=p.steps, samples=len(ds), final_loss=round(curve[-1]["loss"], 6), seconds=round(seconds, 2))
    judged = [row for row in curve if "val_psnr" in row]
    if p.keep_best and judged:  # which eval step's weights the result is (the first of equal scores)
        best = max(judged, key=lambda row: row["val_psnr"])
        summary.update(kept_step=best["step"], kept_val_psnr=round(best["val_psnr"], 4))
    write_json(metrics_dir / "train.json", summary)
    click.echo(f"train: {p.steps} steps on {len(ds)} pairs, loss {curve[0]['loss']:.4f} -> {curve[-1]['loss']:.4f}")


if __name__ == "__main__":
    main()
