import numpy as np
import pandas as pd
import torch
from PIL import Image

from tests.helpers import smooth_images
from tripled.evaluation.evaluate import complexity_histogram, evaluate, held_out, left_out, summarise


def _test_split(tmp_path, n=4, size=48):
    rows = []
    rng = np.random.default_rng(0)
    for i, gt in enumerate(smooth_images(n, size)):
        lq = np.clip(gt + rng.normal(0, 20, gt.shape), 0, 255).astype(np.uint8)
        Image.fromarray(gt).save(tmp_path / f"gt{i}.png")
        Image.fromarray(lq).save(tmp_path / f"lq{i}.png")
        rows.append(dict(id=f"t{i % 2}/{i}", task=f"t{i % 2}", source=f"s{i // 2}",
                         gt_path=str(tmp_path / f"gt{i}.png"), lq_path=str(tmp_path / f"lq{i}.png"),
                         x=8, y=8, w=32, h=32))
    return pd.DataFrame(rows)


def test_identity_model_scores_like_the_input(tmp_path):
    per = evaluate(torch.nn.Identity(), _test_split(tmp_path))
    assert np.allclose(per["mse"], per["mse_input"]) and np.allclose(per["ssim"], per["ssim_input"])
    result = summarise(per)
    assert set(result["tasks"]) == {"t0", "t1"} and result["samples"] == 4 and result["images"] == 4
    assert abs(result["overall"]["psnr_gain"]) < 1e-6


def test_a_destructive_model_scores_below_the_input(tmp_path):
    class Black(torch.nn.Module):
        def forward(self, x):
            return torch.zeros_like(x)

    result = summarise(evaluate(Black(), _test_split(tmp_path)))
    assert result["overall"]["psnr"] < result["overall"]["psnr_input"] - 5


def test_complexity_histogram_marks_selection():
    scores = pd.DataFrame(dict(id=[f"s{i}" for i in range(100)], split=["train"] * 90 + ["test"] * 10,
                               complexity=np.linspace(0, 1, 100)))
    hist = complexity_histogram(scores, pd.Series(["s1", "s2", "s50", "s95"]), bins=10)
    assert hist["all"].sum() == 90 and hist["selected"].sum() == 3  # s95 is a test row


def test_image_psnr_pools_the_error_of_its_tiles():
    # Two tiles of one image: a flat tile restored to 60 dB and a textured one at 20 dB.
    per = pd.DataFrame(dict(id=["a", "b"], task="t", source="img", mse_input=[1e-4, 1e-2], mse=[1e-6, 1e-2],
                            ssim_input=[0.9, 0.5], ssim=[0.99, 0.5]))
    result = summarise(per)["tasks"]["t"]
    assert np.isclose(result["psnr"], 10 * np.log10(1 / np.mean([1e-6, 1e-2])), atol=1e-3)
    assert np.isclose(result["ssim"], 0.745)


class LocalNet(torch.nn.Module):
    """Three 3x3 convolutions (receptive field 3 pixels each side); records the sizes it sees."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.GELU(),
                                       torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.GELU(),
                                       torch.nn.Conv2d(8, 3, 3, padding=1))
        self.seen = []

    def forward(self, x):
        self.seen.append(tuple(x.shape[-2:]))
        return x + 0.1 * self.net(x)


def test_tiled_evaluation_scores_like_whole_images(tmp_path):
    # Tiles blend only where each is trusted (see tripled.evaluation.tiling): exact for a local model.
    split = _test_split(tmp_path)  # 32 x 32 test samples
    whole_net, tiled_net = LocalNet(), LocalNet()
    whole, tiled = evaluate(whole_net, split), evaluate(tiled_net, split, tile=20, overlap=12)
    assert max(max(s) for s in tiled_net.seen) == 20 and whole_net.seen[0] == (32, 32)
    pd.testing.assert_frame_equal(whole, tiled, rtol=1e-5)



def test_batched_evaluation_equals_one_sample_at_a_time(tmp_path, monkeypatch):
    import tripled.evaluation.evaluate as ev
    from tripled.training.archs import build_model

    test = _test_split(tmp_path, n=6)
    test.loc[3:, ["w", "h"]] = 24  # two sizes: runs of 3 and 3
    assert [len(b) for b in ev.batches(test, ev.BATCH_PIXELS)] == [3, 3]
    assert [len(b) for b in ev.batches(test, pixels=2 * 32 * 32)] == [2, 1, 3]
    torch.manual_seed(0)
    model = build_model("nafnet", width=8, enc_blk_nums=[1], dec_blk_nums=[1])
    torch.nn.init.normal_(model.ending.weight, std=0.05)  # not the identity
    batched = evaluate(model, test, progress=False)
    monkeypatch.setattr(ev, "BATCH_PIXELS", 1)  # every sample alone
    assert len(ev.batches(test, ev.BATCH_PIXELS)) == 6
    alone = evaluate(model, test, progress=False)
    assert list(batched["id"]) == list(test["id"])
    pd.testing.assert_frame_equal(batched, alone, rtol=1e-5)


def test_bf16_evaluation_scores_like_fp32(tmp_path):
    from tripled.device import autocast
    from tripled.training.archs import build_model

    torch.manual_seed(0)
    model = build_model("nafnet", width=8, enc_blk_nums=[1], dec_blk_nums=[1])
    torch.nn.init.normal_(model.ending.weight, std=0.05)
    test = _test_split(tmp_path, n=4)
    fp32 = summarise(evaluate(model, test, progress=False))["overall"]
    with autocast("bf16", torch.device("cpu")):
        bf16 = summarise(evaluate(model, test, progress=False))["overall"]
    assert bf16["psnr"] != fp32["psnr"] and abs(bf16["psnr"] - fp32["psnr"]) < 0.2
    assert bf16["psnr_input"] == fp32["psnr_input"]


def _index(tmp_path):
    """Two tasks degrading the same two clean images, one of them held out."""
    rows = []
    for i, gt in enumerate(smooth_images(2, 48)):
        Image.fromarray(gt).save(tmp_path / f"clean{i}.png")
        for task in ("noise", "rain"):
            Image.fromarray(gt).save(tmp_path / f"{task}{i}.png")
            for x in (0, 16):
                rows.append(dict(id=f"{task}/c{i}@{x}", task=task, source=f"c{i}", split="test" if i else "train",
                                 gt_path=str(tmp_path / f"clean{i}.png"), lq_path=str(tmp_path / f"{task}{i}.png"),
                                 x=x, y=0, w=32, h=32, height=48, width=48))
    return pd.DataFrame(rows)


def test_unseen_degradations_score_the_clean_test_images_apart(tmp_path):
    from tripled.evaluation.unseen import clean_test_rows, evaluate_unseen, parse_chain, unseen_pair

    index = _index(tmp_path)
    chain = parse_chain([{"type": "noise", "sigma": 30}, {"type": "jpeg", "quality": 30}])
    rows = clean_test_rows(index, chain)
    assert len(rows) == 2 and set(rows["task"]) == {"noise30+jpeg30"} and rows["id"].is_unique  # tasks share them
    gt, lq = unseen_pair(chain, 0)(next(rows.itertuples()))
    assert gt.shape == lq.shape == (32, 32, 3) and not np.array_equal(gt, lq)
    np.testing.assert_array_equal(lq, unseen_pair(chain, 0)(next(rows.itertuples()))[1])  # deterministic
    unseen = [{"type": "jpeg", "quality": 10}, [{"type": "noise", "sigma": 30}, {"type": "jpeg"}]]
    per = evaluate_unseen(torch.nn.Identity(), index, unseen, seed=0, progress=False)
    result = summarise(per)
    assert set(result["tasks"]) == {"jpeg10", "noise30+jpeg20"} and result["samples"] == 4
    assert abs(result["overall"]["psnr_gain"]) < 1e-6 and result["overall"]["psnr_input"] < 40


def test_unseen_specs_are_checked_at_the_edge():
    import pytest
    from pydantic import ValidationError

    from tripled.evaluation.params import EvalParams

    with pytest.raises(ValidationError, match="unknown degradation type"):
        EvalParams(unseen=[{"type": "snow"}])
    with pytest.raises(ValidationError, match="distinct names"):
        EvalParams(unseen=[{"type": "jpeg"}, {"type": "jpeg", "quality": 20}])


def test_left_out_draws_training_rows_the_set_did_not_keep():
    tasks = [t for t in "ab" for _ in range(10)]
    index = pd.DataFrame(dict(id=[f"{t}/{i % 10}" for i, t in enumerate(tasks)], task=tasks,
                              split=(["train"] * 8 + ["test"] * 2) * 2))
    kept = pd.Series(["a/0", "a/1", "b/0"])
    rows = left_out(index, kept, 3, seed=0)
    assert rows.groupby("task").size().to_dict() == {"a": 3, "b": 3}
    assert (rows["split"] == "train").all() and not rows["id"].isin(kept).any()
    assert rows.equals(left_out(index, kept, 3, seed=0)) and not rows.equals(left_out(index, kept, 3, seed=1))
    assert len(left_out(index, index["id"], 3, seed=0)) == 0  # the full set leaves nothing out
    assert set(held_out(index, 5, 0)["split"]) == {"test"}
