import numpy as np
import pytest
from skimage import data

from tripled.data.degradations import DegradationSpec, degrade

DEFAULT_SPECS = [
    DegradationSpec("noise"),
    DegradationSpec("rain"),
    DegradationSpec("haze"),
    DegradationSpec("blur"),
    DegradationSpec("blur", kind="motion"),
    DegradationSpec("lowlight"),
    DegradationSpec("jpeg"),
]
IDS = [s.task for s in DEFAULT_SPECS]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def astronaut():
    return data.astronaut()


@pytest.fixture(scope="module")
def chelsea():
    return data.chelsea()


@pytest.mark.parametrize("spec", DEFAULT_SPECS, ids=IDS)
def test_deterministic_for_seed(spec, chelsea):
    a = degrade(chelsea, spec, seed=7)
    b = degrade(chelsea, spec, seed=7)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("spec", [DegradationSpec("noise"), DegradationSpec("rain")], ids=["noise", "rain"])
def test_stochastic_types_differ_across_seeds(spec, chelsea):
    assert not np.array_equal(degrade(chelsea, spec, seed=0), degrade(chelsea, spec, seed=1))


def test_input_not_modified(chelsea):
    before = chelsea.copy()
    for spec in DEFAULT_SPECS:
        degrade(chelsea, spec, seed=0)
    assert np.array_equal(chelsea, before)


@pytest.mark.parametrize("spec", DEFAULT_SPECS, ids=IDS)
@pytest.mark.parametrize("shape", [(16, 16), (17, 31), (5, 3), (1, 1), (33, 20)])
def test_shape_and_dtype_preserved(spec, shape):
    img = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    out = degrade(img, spec, seed=3)
    assert out.shape == img.shape
    assert out.dtype == np.uint8


def test_large_blur_radius_on_tiny_image():
    img = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    for kind in ("defocus", "motion"):
        out = degrade(img, DegradationSpec("blur", kind=kind, radius=20), seed=0)
        assert out.shape == img.shape


@pytest.mark.parametrize("spec", DEFAULT_SPECS, ids=IDS)
def test_defaults_lower_psnr(spec, astronaut):
    p = psnr(astronaut, degrade(astronaut, spec, seed=0))
    assert np.isfinite(p)
    assert p < 33.0, f"{spec.task}: PSNR {p:.2f} dB is too high to be a real degradation"


@pytest.mark.parametrize("sigma", [10.0, 25.0, 50.0])
def test_noise_std_matches_sigma(sigma):
    flat = np.full((256, 256, 3), 128, np.uint8)
    out = degrade(flat, DegradationSpec("noise", sigma=sigma), seed=0)
    residual = out.astype(np.float64) - 128.0
    assert abs(residual.mean()) < 0.5
    assert residual.std() == pytest.approx(sigma, rel=0.03)


def test_blur_preserves_flat_image():
    flat = np.full((40, 50, 3), 77, np.uint8)
    for kind in ("defocus", "motion"):
        assert np.array_equal(degrade(flat, DegradationSpec("blur", kind=kind, radius=4), seed=1), flat)


def test_zero_strength_is_identity(chelsea):
    assert np.array_equal(degrade(chelsea, DegradationSpec("noise", sigma=0), seed=0), chelsea)
    assert np.array_equal(degrade(chelsea, DegradationSpec("haze", amount=0), seed=0), chelsea)
    assert np.array_equal(degrade(chelsea, DegradationSpec("rain", amount=0), seed=0), chelsea)
    assert np.array_equal(degrade(chelsea, DegradationSpec("blur", radius=0), seed=0), chelsea)


def test_lowlight_darkens_and_rain_haze_brighten(astronaut):
    mean = astronaut.mean()
    assert degrade(astronaut, DegradationSpec("lowlight"), seed=0).mean() < 0.6 * mean
    assert degrade(astronaut, DegradationSpec("rain"), seed=0).mean() > mean
    assert degrade(astronaut, DegradationSpec("haze"), seed=0).mean() > mean


def test_haze_thicker_with_amount(astronaut):
    thin = psnr(astronaut, degrade(astronaut, DegradationSpec("haze", amount=0.2), seed=0))
    thick = psnr(astronaut, degrade(astronaut, DegradationSpec("haze", amount=0.8), seed=0))
    assert thick < thin


def test_task_names():
    assert DegradationSpec("noise").task == "noise25"
    assert DegradationSpec("noise", sigma=15).task == "noise15"
    assert DegradationSpec("noise", sigma=12.5).task == "noise12.5"
    assert DegradationSpec("blur").task == "blur_defocus"
    assert DegradationSpec("blur", kind="motion").task == "blur_motion"
    assert DegradationSpec("jpeg").task == "jpeg20"
    assert DegradationSpec("jpeg", quality=10).task == "jpeg10"
    for t in ("rain", "haze", "lowlight"):
        assert DegradationSpec(t).task == t
    assert DegradationSpec("noise", name="custom").task == "custom"


def test_from_dict_valid():
    spec = DegradationSpec.from_dict({"type": "jpeg", "quality": 30.0})
    assert spec == DegradationSpec("jpeg", quality=30)
    assert isinstance(spec.quality, int)
    spec = DegradationSpec.from_dict({"type": "noise", "sigma": 50})
    assert spec.sigma == 50.0 and spec.task == "noise50"
    assert DegradationSpec.from_dict({"type": "blur", "kind": "motion", "radius": 3}).task == "blur_motion"


@pytest.mark.parametrize(
    "d, fragment",
    [
        ({"type": "noise", "sigmaa": 25}, "sigmaa"),
        ({"type": "snow"}, "snow"),
        ({"sigma": 25}, "type"),
        ({"type": "blur", "kind": "gaussian"}, "gaussian"),
        ({"type": "noise", "sigma": -1}, "sigma"),
        ({"type": "noise", "sigma": "loud"}, "sigma"),
        ({"type": "jpeg", "quality": 0}, "quality"),
        ({"type": "jpeg", "quality": 101}, "quality"),
        ({"type": "jpeg", "quality": 20.5}, "quality"),
        ({"type": "rain", "amount": 1.5}, "amount"),
        ({"type": "blur", "radius": -2}, "radius"),
        ({"type": "lowlight", "gamma": 0}, "gamma"),
        ({"type": "lowlight", "scale": 0}, "scale"),
        ({"type": "noise", "sigma": float("nan")}, "sigma"),
    ],
)
def test_from_dict_rejects_bad_input(d, fragment):
    with pytest.raises(ValueError, match=fragment):
        DegradationSpec.from_dict(d)


def test_from_dict_rejects_non_mapping():
    with pytest.raises(ValueError):
        DegradationSpec.from_dict(["noise"])


@pytest.mark.parametrize(
    "img",
    [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8, 3), np.float32)],
    ids=["gray", "rgba", "float"],
)
def test_degrade_rejects_bad_images(img):
    with pytest.raises(ValueError):
        degrade(img, DegradationSpec("noise"), seed=0)
