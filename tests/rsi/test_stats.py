"""The A/B decision's statistical tests, checked against values worked out by hand."""

from __future__ import annotations

import pytest

from spark_core.rsi.stats import (
    bootstrap_mean_diff,
    mann_whitney_u,
    normal_cdf,
    two_proportion_z_test,
)


def test_two_proportion_z_test_matches_the_textbook_example() -> None:
    # 50/100 vs 65/100: pooled 0.575, se 0.06991, z 2.1456, two-sided p 0.0319.
    test = two_proportion_z_test(50, 100, 65, 100, alternative="two-sided")
    assert test.statistic == pytest.approx(2.1456, abs=1e-4)
    assert test.p_value == pytest.approx(0.0319, abs=1e-4)
    assert two_proportion_z_test(50, 100, 65, 100).p_value == pytest.approx(
        0.01595, abs=1e-4
    )
    assert two_proportion_z_test(50, 100, 65, 100, alternative="less").p_value > 0.98


def test_two_proportion_z_test_without_variation_finds_nothing() -> None:
    assert two_proportion_z_test(20, 20, 20, 20).p_value == 1.0
    with pytest.raises(ValueError):
        two_proportion_z_test(5, 4, 1, 1)
    with pytest.raises(ValueError, match="alternative"):
        two_proportion_z_test(1, 2, 1, 2, alternative="sideways")


def test_mann_whitney_u_separated_samples() -> None:
    # U_b = 25, mean 12.5, var 22.917; with continuity z = 12 / 4.787 = 2.5067.
    test = mann_whitney_u([1, 2, 3, 4, 5], [6, 7, 8, 9, 10], alternative="greater")
    assert test.statistic == pytest.approx(2.5067, abs=1e-4)
    assert test.p_value == pytest.approx(1 - normal_cdf(2.5067), abs=1e-6)
    assert mann_whitney_u([1, 2, 3], [1, 2, 3], alternative="two-sided").p_value == 1.0


def test_mann_whitney_u_corrects_for_ties() -> None:
    zeros, ones = [0.0] * 10, [1.0] * 10
    test = mann_whitney_u(zeros, zeros[:5] + ones[:5], alternative="greater")
    # Tie groups of 15 and 5: var = 100/12 * (21 - (3360 + 120) / 380) = 98.68.
    assert test.statistic == pytest.approx((75 - 50 - 0.5) / 98.684**0.5, abs=1e-3)
    assert test.significant(0.05)
    assert mann_whitney_u(zeros, zeros).p_value == 1.0
    with pytest.raises(ValueError):
        mann_whitney_u([], [1.0])


def test_bootstrap_is_reproducible_with_a_seed() -> None:
    a = [10.0, 12.0, 11.0, 13.0, 9.0]
    b = [20.0, 22.0, 21.0, 23.0, 19.0]
    first = bootstrap_mean_diff(a, b, seed=7, iterations=500)
    assert first == bootstrap_mean_diff(a, b, seed=7, iterations=500)
    diff, low, high = first
    assert diff == 10.0 and low <= diff <= high and low > 5
    with pytest.raises(ValueError):
        bootstrap_mean_diff(a, b, confidence=1.5)
