import numpy as np
import pytest
import torch
from skimage import data, filters
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from tripled.evaluation.metrics import psnr, ssim, to_tensor, to_uint8


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    # 256x256 crop keeps the skimage reference quick.
    return data.astronaut()[128:384, 128:384].astype(np.float64) / 255.0


def _degraded(img: np.ndarray, kind: str, level: float) -> np.ndarray:
    if kind == "noise":
        rng = np.random.default_rng(0)
        return np.clip(img + rng.normal(0.0, level, img.shape), 0.0, 1.0)
    return filters.gaussian(img, sigma=level, channel_axis=-1)


def _t(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0).float()


def _sk_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return structural_similarity(
        a, b, channel_axis=-1, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=1.0,
    )


CASES = [("noise", 0.02), ("noise", 0.1), ("blur", 1.0), ("blur", 3.0)]


@pytest.mark.parametrize("kind,level", CASES)
def test_matches_skimage(astronaut, kind, level):
    deg = _degraded(astronaut, kind, level)
    # Compare on the float32-rounded images the tensors actually hold.
    a32, d32 = astronaut.astype(np.float32).astype(np.float64), deg.astype(np.float32).astype(np.float64)
    ref_ssim = _sk_ssim(d32, a32)
    ref_psnr = peak_signal_noise_ratio(a32, d32, data_range=1.0)
    got_ssim = ssim(_t(deg), _t(astronaut))
    got_psnr = psnr(_t(deg), _t(astronaut))
    assert got_ssim.shape == (1,) and got_psnr.shape == (1,)
    assert got_ssim.dtype == torch.float64
    assert abs(got_ssim.item() - ref_ssim) < 1e-3
    assert abs(got_psnr.item() - ref_psnr) < 1e-3


def test_degradation_ordering(astronaut):
    a = _t(astronaut)
    light, heavy = _t(_degraded(astronaut, "noise", 0.02)), _t(_degraded(astronaut, "noise", 0.1))
    assert ssim(light, a) > ssim(heavy, a)
    assert psnr(light, a) > psnr(heavy, a)


def test_batch_matches_single(astronaut):
    degs = [_degraded(astronaut, k, lv) for k, lv in CASES]
    pred = torch.cat([_t(d) for d in degs])
    target = _t(astronaut).expand(len(degs), -1, -1, -1)
    s, p = ssim(pred, target), psnr(pred, target)
    assert s.shape == (len(degs),) and p.shape == (len(degs),)
    for i, d in enumerate(degs):
        assert torch.allclose(s[i], ssim(_t(d), _t(astronaut)))
        assert torch.allclose(p[i], psnr(_t(d), _t(astronaut)))


def test_identical(astronaut):
    a = _t(astronaut)
    assert ssim(a, a).item() == pytest.approx(1.0, abs=1e-12)
    assert torch.isinf(psnr(a, a)).all()


def test_psnr_constant_error():
    target = torch.full((2, 3, 16, 16), 0.5)
    pred = target + 0.1
    assert torch.allclose(psnr(pred, target), torch.tensor([20.0, 20.0], dtype=torch.float64), atol=1e-5)
    # data_range scales the peak: same relative error on a 0..255 scale.
    assert psnr(pred * 255, target * 255, data_range=255.0)[0].item() == pytest.approx(20.0, abs=1e-4)


def test_shape_errors():
    with pytest.raises(ValueError):
        psnr(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 17))
    with pytest.raises(ValueError):
        ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))


def test_round_trip():
    img = np.random.default_rng(1).integers(0, 256, size=(17, 23, 3), dtype=np.uint8)
    t = to_tensor(img)
    assert t.shape == (1, 3, 17, 23) and t.dtype == torch.float32
    assert 0.0 <= t.min() and t.max() <= 1.0
    np.testing.assert_array_equal(to_uint8(t), img)
    np.testing.assert_array_equal(to_uint8(t[0]), img)


def test_to_uint8_rounds_and_clips():
    t = torch.tensor([-0.5, 0.0, 0.4 / 255, 1.4 / 255, 1.6 / 255, 1.0, 2.0]).view(1, 1, 7).expand(3, 1, 7)
    out = to_uint8(t)
    assert out.dtype == np.uint8 and out.shape == (1, 7, 3)
    np.testing.assert_array_equal(out[0, :, 0], [0, 0, 0, 1, 2, 255, 255])
