import numpy as np
import pytest
import torch

import tripled.selection.refine as refine_module
from tests.helpers import TINY_VIT, smooth_images
from tripled.features.backbone import create_backbone
from tripled.selection.refine import FeatureDistance, RefineNet, RefineParams, refine


def test_refine_net_starts_as_identity():
    x = torch.rand(2, 3, 17, 23)
    assert torch.equal(RefineNet(8, 2)(x), x)


def _pairs(images):
    return [(img, np.clip(img.astype(int) + 30, 0, 255).astype(np.uint8)) for img in images]


def test_zero_steps_is_the_identity(monkeypatch):
    def untouched(*_):
        raise AssertionError("refine without steps ran the network")  # the copy of `full` passes 52k pairs

    monkeypatch.setattr(RefineNet, "forward", untouched)
    backbone = create_backbone(TINY_VIT)
    pairs = _pairs(smooth_images(4, 32))
    full = np.random.default_rng(0).normal(size=(50, backbone.model.num_features)).astype(np.float32)
    out, report, feats = refine(pairs, "gt", backbone, full, RefineParams(steps=0, precision="fp32"))
    assert all(np.array_equal(a, c) and np.array_equal(b, d) for (a, b), (c, d) in zip(out, pairs))
    # the reported features and distance are the ViT's on the unchanged clean images
    x = torch.from_numpy(np.stack([gt for gt, _ in pairs])).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        ref = backbone.embed(x).numpy()
    np.testing.assert_allclose(feats["selected"], ref, atol=1e-5)
    assert report["before"] == pytest.approx(FeatureDistance(full, 0).kl(torch.from_numpy(ref)).item(), rel=1e-4)
    assert report["final_loss"] is None and report["after"] == report["before"]


def test_distance_drops_on_a_toy_set():
    backbone = create_backbone(TINY_VIT)
    full_images = smooth_images(64, 32, seed=1)
    with torch.no_grad():
        full = backbone.embed(torch.from_numpy(full_images).permute(0, 3, 1, 2).float() / 255).numpy()
    subset = (smooth_images(8, 32, seed=2) * 0.4).astype(np.uint8)  # darker than the full set
    for distance in ("kl", "mmd"):
        p = RefineParams(steps=40, lr=5e-3, distance=distance, fidelity=0.1, width=8, blocks=1)
        out, report, feats = refine(_pairs(subset), "gt", backbone, full, p)
        assert report["after"] < 0.8 * report["before"], report
        assert feats["refined"].shape == (8, backbone.model.num_features)
        # the refined subset moved towards the full set's mean in feature space
        gap = {k: np.linalg.norm(v.mean(0) - full.mean(0)) for k, v in feats.items()}
        assert gap["refined"] < gap["selected"]
        assert not np.array_equal(out[0][0], subset[0])


def test_bf16_refine_moves_the_subset_like_fp32():
    backbone = create_backbone(TINY_VIT)
    full_images = smooth_images(64, 32, seed=1)
    with torch.no_grad():
        full = backbone.embed(torch.from_numpy(full_images).permute(0, 3, 1, 2).float() / 255).numpy()
    pairs = _pairs((smooth_images(8, 32, seed=2) * 0.4).astype(np.uint8))
    reports = {}
    for precision in ("fp32", "bf16"):
        p = RefineParams(steps=40, lr=5e-3, fidelity=0.1, width=8, blocks=1, precision=precision)
        out, reports[precision], _ = refine(pairs, "gt", backbone, full, p)
        assert all(a.dtype == np.uint8 and a.shape == b.shape for (a, _), (b, _) in zip(out, pairs))
    bf, fp = reports["bf16"], reports["fp32"]
    assert bf["before"] != fp["before"]  # the ViT ran in bf16
    assert bf["before"] == pytest.approx(fp["before"], rel=0.05) and bf["after"] < 0.8 * bf["before"]


def test_kl_of_the_full_set_to_itself_is_near_zero():
    full = np.random.default_rng(0).normal(size=(500, 16)).astype(np.float32)
    d = FeatureDistance(full, 0)
    assert d.kl(torch.from_numpy(full)).item() < 1e-3
    assert d.kl(torch.from_numpy(full[:, ::-1] * 3).contiguous()).item() > 0.5



def test_mmd_of_a_set_larger_than_the_reference_is_subsampled(monkeypatch):
    """A subset as large as the training set (method full) must not build its n x n kernel."""
    monkeypatch.setattr(refine_module, "MMD_REFERENCE", 64)
    rng = np.random.default_rng(0)
    full = rng.normal(size=(5000, 8)).astype(np.float32)
    dist = FeatureDistance(full, 0)
    assert dist.mmd(torch.from_numpy(full)).item() == 0.0  # the same rows as the reference
    same = dist.mmd(torch.from_numpy(rng.normal(size=(4000, 8)).astype(np.float32))).item()
    shifted = dist.mmd(torch.from_numpy(rng.normal(1.0, size=(4000, 8)).astype(np.float32))).item()
    assert abs(same) < 0.05 < shifted


def test_pairs_of_several_sizes_come_back_in_order_and_shape():
    """The CNN runs on batches of same-size images (_runs); mixed sizes keep their order and shapes."""
    backbone = create_backbone(TINY_VIT)
    sizes = [32, 32, 40, 32, 48, 48]
    pairs = [_pairs(smooth_images(1, s, seed=i))[0] for i, s in enumerate(sizes)]
    full = np.random.default_rng(0).normal(size=(50, backbone.model.num_features)).astype(np.float32)
    out, report, feats = refine(pairs, "gt", backbone, full, RefineParams(steps=3, batch_size=4, width=8, blocks=1))
    assert [gt.shape[0] for gt, _ in out] == sizes and all(gt.shape == lq.shape for gt, lq in out)
    assert feats["refined"].shape[0] == len(pairs) and report["samples"] == len(pairs)


def test_a_batch_gives_what_one_image_at_a_time_gives():
    from tripled.selection.refine import _batched, _runs

    torch.manual_seed(0)
    net = RefineNet(8, 1)
    torch.nn.init.normal_(net.tail.weight, std=0.1)  # not the identity
    images = [torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16), torch.rand(1, 3, 20, 16), torch.rand(1, 3, 16, 16)]
    assert list(_runs(images, range(4))) == [[0, 1], [2], [3]]
    with torch.no_grad():
        for run, out in _batched(net, images, range(4)):
            for i, o in zip(run, out):
                torch.testing.assert_close(o[None], net(images[i]), rtol=1e-5, atol=1e-6)
