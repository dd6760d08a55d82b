import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.helpers import write_distilled
from tripled.data.distilled import DistilledSet
from tripled.training.curriculum import CurriculumSampler
from tripled.training.loop import StepTimes, _update, balance_weights, initial_state, schedule, train
from tripled.training.params import ModelParams, TrainParams

MODEL = ModelParams(arch="nafnet", kwargs=dict(width=8, enc_blk_nums=[1, 1], dec_blk_nums=[1, 1]))


def test_sampler_stage_one_then_mix():
    stage = np.array([1] * 10 + [2] * 10)
    s = CurriculumSampler(stage, np.ones(20), switch_step=100, mix=0.8, ema=0.5)
    rng = np.random.default_rng(0)
    assert all(stage[s.draw(step, 16, rng)].max() == 1 for step in range(0, 100, 7))
    later = np.concatenate([s.draw(150, 16, rng) for _ in range(200)])
    share_hard = (stage[later] == 2).mean()
    assert 0.8 < share_hard < 0.95  # 0.8 from stage 2 plus half of the rest


def test_sampler_prefers_hard_samples_with_high_running_loss():
    stage = np.array([2] * 10)
    s = CurriculumSampler(stage, np.ones(10), switch_step=0, mix=1.0, ema=0.0)
    s.update(np.arange(10), np.array([1.0] * 9 + [20.0]))
    draws = np.concatenate([s.draw(5, 32, np.random.default_rng(i)) for i in range(50)])
    assert (draws == 9).mean() > 0.5


def test_balance_weights_even_out_tasks(tmp_path):
    ds = DistilledSet(write_distilled(tmp_path / "d"))  # task t1 has twice the noise of t0
    w = balance_weights(ds)
    t = ds.manifest["task"].to_numpy()
    assert np.isclose(w.mean(), 1) and w[t == "t0"].mean() > 1.5 * w[t == "t1"].mean()


def test_balance_power_softens_the_weights(tmp_path):
    """Power p divides each task's loss by its input error to the p: 0 weighs every sample alike, 0.5 is
    the square root of the full balance's ratio between tasks."""
    ds = DistilledSet(write_distilled(tmp_path / "d"))
    t = ds.manifest["task"].to_numpy()

    def ratio(power):
        w = balance_weights(ds, power)
        return w[t == "t0"].mean() / w[t == "t1"].mean()

    assert np.allclose(balance_weights(ds, 0.0), 1)
    assert np.isclose(ratio(0.5), np.sqrt(ratio(1.0)), rtol=1e-5)


def test_a_few_steps_lower_the_loss(tmp_path):
    ds = DistilledSet(write_distilled(tmp_path / "d"))
    p = TrainParams(steps=150, batch_size=4, crop=32, lr=2e-3, log_every=10, checkpoint_every=1000,
                    stage1_fraction=0.0)
    _, curve = train(ds, MODEL, p, tmp_path / "ck.pt", "f")
    assert curve[-1]["loss"] < 0.7 * curve[0]["loss"]


def test_bf16_training_on_the_cpu_learns_like_fp32(tmp_path):
    ds = DistilledSet(write_distilled(tmp_path / "d"))
    losses = {}
    for precision in ("fp32", "bf16"):
        p = TrainParams(steps=150, batch_size=4, crop=32, lr=2e-3, log_every=10, checkpoint_every=1000,
                        stage1_fraction=0.0, precision=precision)
        model, curve = train(ds, MODEL, p, tmp_path / f"{precision}.pt", "f")
        assert all(t.dtype == torch.float32 for t in model.state_dict().values() if t.is_floating_point())
        losses[precision] = curve[-1]["loss"]
        assert curve[-1]["loss"] < 0.7 * curve[0]["loss"]
    assert losses["bf16"] != losses["fp32"]  # autocast did run in bf16
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.2)


def _lrs(p: TrainParams) -> list[float]:
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=p.lr)
    sched, lrs = schedule(opt, p), []
    for _ in range(p.steps):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    return lrs


def test_warmup_rises_linearly_then_decays_like_the_cosine():
    cold = _lrs(TrainParams(steps=100, lr=1.0))
    warm = _lrs(TrainParams(steps=100, lr=1.0, warmup_steps=20))
    assert cold[0] == 1.0 and cold[-1] == pytest.approx(0.01, abs=0.01)  # off: the cosine alone, as before
    assert warm[0] == pytest.approx(0.01) and np.all(np.diff(warm[:21]) > 0) and warm[20] == pytest.approx(1.0)
    assert np.allclose(np.diff(warm[:20]), 0.99 / 20)
    assert np.all(np.diff(warm[20:]) < 0) and warm[-1] == pytest.approx(cold[-1], abs=0.01)


def test_grad_clip_bounds_the_step(tmp_path):
    ds = DistilledSet(write_distilled(tmp_path / "d"))
    norms = {}
    for clip in (0.0, 1e-3):
        state = initial_state(ds, MODEL, TrainParams(lr=1e-9, grad_clip=clip), torch.device("cpu"))
        _update(state, sum(w.square().sum() + w.sum() for w in state.model.parameters()), clip)
        norms[clip] = torch.nn.utils.get_total_norm([w.grad for w in state.model.parameters() if w.grad is not None])
    assert norms[0.0] > 1.0 and norms[1e-3] == pytest.approx(1e-3, rel=1e-3)


def _judged(scores: list[float]):
    """A judge returning `scores` in turn and keeping the weights it saw at each call."""
    seen = []

    def judge(model):
        seen.append({k: v.clone() for k, v in model.state_dict().items()})
        return scores[len(seen) - 1]
    return judge, seen


def test_keep_best_returns_the_best_judged_weights_and_survives_a_resume(tmp_path):
    ds = DistilledSet(write_distilled(tmp_path / "d"))
    p = TrainParams(steps=20, batch_size=4, crop=24, log_every=2, eval_every=6, checkpoint_every=7, keep_best=True)
    judge, seen = _judged([1.0, 5.0, 2.0, 3.0])  # judged at steps 6, 12, 18 and the last, 20
    model, curve = train(ds, MODEL, p, tmp_path / "a.pt", "f", judge=judge)
    assert [r["step"] for r in curve if "val_psnr" in r] == [6, 12, 18, 20] and len(seen) == 4
    assert all(torch.equal(a, seen[1][k]) for k, a in model.state_dict().items())  # step 12's
    last, _ = train(ds, MODEL, p.model_copy(update=dict(keep_best=False)), tmp_path / "b.pt", "f",
                    judge=_judged([1.0, 5.0, 2.0, 3.0])[0])
    assert all(torch.equal(a, seen[3][k]) for k, a in last.state_dict().items())  # without: the last
    # The checkpoint of step 14 holds step 12's weights as the best so far: a resumed run still returns them.
    resumed, resumed_curve = train(ds, MODEL, p, tmp_path / "a.pt", "f", judge=_judged([2.0, 3.0])[0])
    assert resumed_curve == curve
    assert all(torch.equal(a, seen[1][k]) for k, a in resumed.state_dict().items())


def test_keep_best_needs_eval_steps():
    with pytest.raises(ValueError, match="eval_every"):
        TrainParams(keep_best=True, eval_every=0)


def test_curriculum_switches_stage(tmp_path):
    ds = DistilledSet(write_distilled(tmp_path / "d"))
    p = TrainParams(steps=20, batch_size=2, crop=16, log_every=5, stage1_fraction=0.5)
    _, curve = train(ds, MODEL, p, tmp_path / "ck.pt", "f")
    assert [c["stage"] for c in curve] == [1, 1, 2, 2]


@pytest.mark.parametrize("workers, warmup_steps, grad_clip", [(0, 0, 0.0), (2, 0, 0.0), (0, 16, 0.05)])
def test_resume_continues_exactly(tmp_path, workers, warmup_steps, grad_clip):
    # With loader processes, batches drawn ahead of the checkpoint are replayed from it; a warm-up that
    # ends after the checkpoint resumes in step too.
    ds = DistilledSet(write_distilled(tmp_path / "d"))
    p = TrainParams(steps=20, batch_size=4, crop=24, log_every=3, checkpoint_every=7, stage1_fraction=0.2,
                    workers=workers, warmup_steps=warmup_steps, grad_clip=grad_clip)
    full_model, full_curve = train(ds, MODEL, p, tmp_path / "a.pt", "f")
    assert (tmp_path / "a.pt").is_file()  # last checkpoint at step 14
    # A run that died after step 14 left that checkpoint: a rerun continues from it (steps 15-20 only).
    times = StepTimes()
    resumed_model, resumed_curve = train(ds, MODEL, p, tmp_path / "a.pt", "f", times=times)
    assert len(times.total) == 20 - 14
    assert resumed_curve == full_curve
    for a, b in zip(full_model.state_dict().values(), resumed_model.state_dict().values()):
        assert torch.equal(a, b)
    # A checkpoint of other params is ignored.
    other_model, _ = train(ds, MODEL, p.model_copy(update=dict(seed=1)), tmp_path / "a.pt", "g")
    assert not all(torch.equal(a, b) for a, b in zip(full_model.state_dict().values(),
                                                      other_model.state_dict().values()))


def test_loader_workers_read_the_same_batches(tmp_path):
    # Stage 1 only: draws do not depend on losses, so reading ahead in worker processes changes nothing.
    ds = DistilledSet(write_distilled(tmp_path / "d"))
    p = TrainParams(steps=12, batch_size=4, crop=24, log_every=4, stage1_fraction=1.0)
    inline, inline_curve = train(ds, MODEL, p, tmp_path / "a.pt", "f")
    loaded, loaded_curve = train(ds, MODEL, p.model_copy(update=dict(workers=2, prefetch=3)), tmp_path / "b.pt", "f")
    assert inline_curve == loaded_curve
    for a, b in zip(inline.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_sampler_loss_reweights_within_tasks_but_keeps_task_shares():
    # Task a's loss is 10x task b's: without the cap a would take ~90 % of the hard draws.
    task = np.array(["a"] * 10 + ["b"] * 10)
    s = CurriculumSampler(np.full(20, 2), np.ones(20), switch_step=0, mix=1.0, ema=0.0, task=task)
    s.update(np.arange(20), np.array([10.0] * 9 + [100.0] + [1.0] * 9 + [10.0]))
    draws = np.concatenate([s.draw(5, 64, np.random.default_rng(i)) for i in range(100)])
    assert 0.45 < (task[draws] == "a").mean() < 0.55
    assert (draws == 9).mean() > 0.2 and (draws == 19).mean() > 0.2  # inside a task, the high loss still wins
    w = s.hard_weights(np.arange(20))
    assert np.isclose(w[:10].sum(), 10) and np.isclose(w[10:].sum(), 10)


def test_fingerprint_covers_params_data_and_training_code(tmp_path, monkeypatch):
    import types

    import tripled.training.loop as t
    manifest, code = tmp_path / "manifest.parquet", tmp_path / "loop.py"
    manifest.write_bytes(b"m")
    code.write_text("v1")
    monkeypatch.setattr(t, "CODE_MODULES", (types.SimpleNamespace(__file__=str(code)),))
    p = TrainParams()
    first = t.run_fingerprint(MODEL, p, manifest, {})
    assert t.run_fingerprint(MODEL, p, manifest, {}) == first
    assert t.run_fingerprint(MODEL, TrainParams(seed=1), manifest, {}) != first
    code.write_text("v2")  # a checkpoint of older training code is not resumed
    assert t.run_fingerprint(MODEL, p, manifest, {}) != first


def test_steps_per_task_counts_steps_for_each_task(tmp_path):
    p = TrainParams(steps=100, steps_per="task")
    assert (p.for_tasks(3).steps, p.for_tasks(3).steps_per) == (300, "run")
    per_run = TrainParams(steps=100)
    assert per_run.for_tasks(3) is per_run

    # Through the stage: the toy set has two tasks, so 3 steps per task train 6 steps.
    repo = Path(__file__).resolve().parents[1]
    data = write_distilled(tmp_path / "d", n=4, size=24)
    params = tmp_path / "params.yaml"
    train_section = dict(steps=3, steps_per="task", batch_size=2, crop=16, log_every=1, device="cpu")
    params.write_text(yaml.safe_dump(dict(model=MODEL.model_dump(), train=train_section)))
    cmd = [sys.executable, str(repo / "stages/train.py"), "--params", str(params), "--data", str(data),
           "--out", str(tmp_path / "m"), "--metrics", str(tmp_path / "metrics")]
    env = dict(os.environ, PYTHONPATH=str(repo), OMP_NUM_THREADS="1")
    run = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "train: 3 steps per task x 2 tasks" in run.stdout
    assert json.loads((tmp_path / "metrics/train.json").read_text())["steps"] == 6
