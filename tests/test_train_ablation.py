"""train.curriculum (the no-curriculum ablation) and the held-out PSNR curve (train.eval_every)."""
import numpy as np

from tests.helpers import write_distilled
from tripled.data.distilled import DistilledSet
from tripled.training.curriculum import CurriculumSampler
from tripled.training.loop import train
from tripled.training.params import ModelParams, TrainParams

MODEL = ModelParams(arch="nafnet", kwargs=dict(width=8, enc_blk_nums=[1, 1], dec_blk_nums=[1, 1]))


def test_no_curriculum_draws_hard_samples_from_the_first_step(tmp_path, monkeypatch):
    ds = DistilledSet(write_distilled(tmp_path / "d"))  # stages 1 and 2
    stage = ds.manifest["stage"].to_numpy()
    seen = {True: [], False: []}
    original = CurriculumSampler.draw
    for curriculum in (True, False):
        def spy(self, step, n, rng, _c=curriculum):
            idx = original(self, step, n, rng)
            seen[_c].append((step, idx))
            return idx

        monkeypatch.setattr(CurriculumSampler, "draw", spy)
        p = TrainParams(steps=20, batch_size=4, crop=16, log_every=5, stage1_fraction=0.5, curriculum=curriculum)
        _, curve = train(ds, MODEL, p, tmp_path / f"{curriculum}.pt", "f")
        assert [c["stage"] for c in curve] == ([1, 1, 2, 2] if curriculum else [2, 2, 2, 2])
    early = lambda c: np.concatenate([idx for step, idx in seen[c] if step < 10])  # noqa: E731
    assert (stage[early(True)] == 1).all()
    assert (stage[early(False)] == 2).any()


def test_psnr_curve_every_eval_every_steps(tmp_path):
    ds = DistilledSet(write_distilled(tmp_path / "d"))
    calls = []

    def validate(model):
        calls.append(model.training)
        return 20.0 + len(calls)

    p = TrainParams(steps=20, batch_size=2, crop=16, log_every=5, eval_every=10)
    _, curve = train(ds, MODEL, p, tmp_path / "ck.pt", "f", validate=validate)
    assert [c.get("psnr") for c in curve] == [None, 21.0, None, 22.0]
    assert calls == [False, False]  # the model is validated in eval mode
