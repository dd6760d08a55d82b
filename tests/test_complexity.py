"""Complexity labels: entropy / texture / gradient measures and how they are combined into one target."""
import numpy as np
import pytest

from tripled.features.complexity import (
    LABELS,
    _grey,
    combine,
    complexity_labels,
    global_entropy,
    gradient_energy,
    local_entropy,
)

H = W = 128


def _rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey.astype(np.uint8)[..., None], 3, axis=-1)


def _ramp() -> np.ndarray:
    """Smooth horizontal ramp spanning a small grey range."""
    return np.tile(np.linspace(100, 140, W).astype(np.uint8), (H, 1))


def _checkerboard(cell: int = 2) -> np.ndarray:
    y, x = np.mgrid[:H, :W]
    return (((y // cell + x // cell) % 2) * 255).astype(np.uint8)


def _texture() -> np.ndarray:
    """Multi-level periodic texture: 8 grey levels in every 16x16 block."""
    y, x = np.mgrid[:H, :W]
    return (((x // 2 + 3 * (y // 2)) % 8) * 32).astype(np.uint8)


@pytest.mark.parametrize("value", [0, 77, 128, 255])
def test_constant_image_has_zero_complexity(value):
    grey = np.full((H, W), value, np.uint8)
    assert global_entropy(grey) == 0.0
    assert local_entropy(grey) == 0.0
    assert gradient_energy(grey) == pytest.approx(0.0, abs=1e-7)
    np.testing.assert_allclose(complexity_labels(_rgb(grey)), 0.0, atol=1e-7)


def test_uniform_noise_has_global_entropy_close_to_8_bits():
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (256, 256), dtype=np.uint8)
    assert global_entropy(grey) == pytest.approx(8.0, abs=0.05)
    # through the full RGB path: a grey noise image keeps its entropy
    assert complexity_labels(_rgb(grey))[0] == pytest.approx(8.0, abs=0.05)
    # independent RGB channels: grey is a weighted sum, so more peaked, but still high
    rgb = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    assert complexity_labels(rgb)[0] == pytest.approx(global_entropy(_grey(rgb))) and complexity_labels(rgb)[0] > 7.3


def test_grey_of_grey_image_is_identity():
    v = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(_grey(_rgb(v[None]))[0], v)
    assert global_entropy(_grey(_rgb(v[None]))) == pytest.approx(8.0)


def test_grey_ignores_alpha_channel():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    rgba = np.concatenate([rgb, rng.integers(0, 256, (16, 16, 1), dtype=np.uint8)], -1)
    np.testing.assert_array_equal(_grey(rgb), _grey(rgba))


def test_texture_is_more_complex_than_smooth_ramp():
    ramp, checker, texture = _ramp(), _checkerboard(), _texture()
    assert local_entropy(texture) > local_entropy(ramp) + 1.0
    assert local_entropy(checker) >= local_entropy(ramp)
    assert gradient_energy(checker) > 10 * gradient_energy(ramp)
    assert gradient_energy(texture) > 10 * gradient_energy(ramp)
    assert gradient_energy(ramp) > 0


def test_local_entropy_bounded_by_levels():
    rng = np.random.default_rng(2)
    noise = rng.integers(0, 256, (128, 128), dtype=np.uint8)
    assert 0 < local_entropy(noise, block=16, levels=32) <= 5.0 + 1e-9
    # an image smaller than one block falls back to the global entropy
    small = noise[:8, :8]
    assert local_entropy(small, block=16) == pytest.approx(global_entropy(small))


def test_complexity_labels_shape_dtype_and_order():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    labels = complexity_labels(img)
    assert labels.shape == (len(LABELS),) == (3,)
    assert labels.dtype == np.float32
    grey = _grey(img)
    expected = {"global_entropy": global_entropy(grey), "local_entropy": local_entropy(grey),
                "gradient": gradient_energy(grey)}
    np.testing.assert_allclose(labels, [expected[name] for name in LABELS], rtol=1e-6)


def _labels_with_nan(n=50, seed=4):
    rng = np.random.default_rng(seed)
    labels = rng.normal([7.0, 3.0, 0.1], [0.5, 1.0, 0.05], size=(n, 3))
    labels[[3, 17, 40]] = np.nan
    return labels


@pytest.mark.parametrize("name", LABELS)
def test_combine_named_column(name):
    labels = _labels_with_nan()
    np.testing.assert_array_equal(combine(labels, name), labels[:, LABELS.index(name)])


def test_combine_averages_zscores_ignoring_nan_rows():
    labels = _labels_with_nan()
    out = combine(labels, "combined")
    assert out.shape == (len(labels),)
    nan_rows = np.isnan(labels).any(1)
    assert np.isnan(out[nan_rows]).all()
    assert not np.isnan(out[~nan_rows]).any()
    valid = labels[~nan_rows]
    z = (valid - valid.mean(0)) / valid.std(0)
    np.testing.assert_allclose(out[~nan_rows], z.mean(1), rtol=1e-6, atol=1e-6)
    # z-scores are scale-free: rescaling one label does not change the combined target
    scaled = labels.copy()
    scaled[:, 2] *= 1000
    np.testing.assert_allclose(combine(scaled, "combined")[~nan_rows], out[~nan_rows], rtol=1e-6, atol=1e-6)


def test_combine_unknown_name_raises():
    with pytest.raises(ValueError):
        combine(_labels_with_nan(), "nonsense")
