import numpy as np
import pytest

from tripled.selection.projection import principal_axes, projection_table


def test_axes_follow_the_spread_with_fixed_signs():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 5)) * np.array([10.0, 3.0, 1.0, 0.5, 0.1])
    mean, axes = principal_axes(x)
    assert axes.shape == (2, 5)
    assert abs(axes[0, 0]) > 0.99 and abs(axes[1, 1]) > 0.99
    _, flipped = principal_axes(-x)  # the same spread mirrored: the same axes, not their negatives
    assert np.allclose(flipped, axes)


def test_table_one_row_per_point():
    rng = np.random.default_rng(1)
    full, sel = rng.normal(size=(300, 8)), rng.normal(size=(6, 8))
    table = projection_table(full, sel, sel + 0.1, max_points=100)
    assert list(table.columns) == ["pc1", "pc2", "set"]
    assert table["set"].value_counts().to_dict() == {"all": 100, "selected": 6, "refined": 6}
    assert table[["pc1", "pc2"]].notna().all().all()
    again = projection_table(full, sel, sel + 0.1, max_points=100)
    assert table.equals(again)


def test_too_few_rows_rejected():
    with pytest.raises(ValueError, match="at least two"):
        principal_axes(np.zeros((1, 4)))
