"""bench/stats.py against hand-worked examples."""
import pytest

from bench.stats import paired, seeds_needed


def test_paired_difference_hand_worked():
    a = {0: 24.0, 1: 24.5, 2: 23.8, 3: 24.2, 4: 24.1}
    b = {0: 23.5, 1: 23.9, 2: 23.6, 3: 23.5, 4: 23.9, 5: 30.0}  # seed 5 has no partner: left out
    r = paired(a, b)
    # differences 0.5, 0.6, 0.2, 0.7, 0.2: mean 0.44; sample std sqrt(0.212 / 4) = 0.2302; SE 0.1030
    assert r["n"] == 5 and r["diffs"] == [0.5, 0.6, 0.2, 0.7, 0.2]
    assert r["diff_db"] == pytest.approx(0.44) and r["se_db"] == pytest.approx(0.1030, abs=1e-4)
    assert r["beats"]  # 0.44 > 2 x 0.1030
    assert not paired(b, a)["beats"]


def test_unpaired_spread_does_not_hide_a_paired_win():
    # both methods swing by 3 dB with the seed, but a is 0.3 dB above b in every seed
    a = {s: 20.0 + 3 * (s % 2) + 0.3 + 0.01 * s for s in range(5)}
    b = {s: 20.0 + 3 * (s % 2) for s in range(5)}
    assert paired(a, b)["beats"] and paired(a, b)["diff_db"] == pytest.approx(0.32)


def test_seeds_needed_hand_worked():
    # differences 1.0, -0.2, 0.6, 0.5, 0.4: mean / SE = 0.40 / 0.60, 0.467 / 0.353, 0.475 / 0.250, 0.46 / 0.194
    a = {s: 20.0 + d for s, d in enumerate([1.0, -0.2, 0.6, 0.5, 0.4])}
    b = {s: 20.0 for s in range(5)}
    assert [paired({s: a[s] for s in range(n)}, b)["beats"] for n in (2, 3, 4, 5)] == [False, False, False, True]
    assert seeds_needed(a, b) == 5
    assert seeds_needed(b, a) is None
    steady = {s: 20.5 + 0.1 * (s % 2) for s in range(5)}
    assert seeds_needed(steady, b) == 2
