"""Confidence intervals and interpolation on known numbers."""

from __future__ import annotations

import math

import pytest

from rlhf_zoo.bench.stats import diff_ci, finite, fmt_ci, fmt_seeds_ci, interp_path, interp_sorted, mean_ci, t_critical

# Two-sided 95 % Student-t critical values (standard tables).
TABLE = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 9: 2.262, 10: 2.228, 20: 2.086, 30: 2.042}


@pytest.mark.parametrize("df,expected", sorted(TABLE.items()))
def test_t_critical_matches_tables(df, expected):
    assert t_critical(df) == pytest.approx(expected, abs=5e-4)


def test_t_critical_matches_scipy_when_available():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 6, 7, 15, 41, 100):
        for level in (0.9, 0.95, 0.99):
            assert t_critical(df, level) == pytest.approx(stats.t.ppf(0.5 + level / 2, df), rel=1e-9)


def test_mean_ci_known_numbers():
    m, h, n = mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])  # s = sqrt(2.5), n = 5, t = 2.7764
    assert (m, n) == (3.0, 5)
    assert h == pytest.approx(2.7764451 * math.sqrt(2.5) / math.sqrt(5), rel=1e-6)
    assert mean_ci([2.0, 2.0, 2.0])[1] == 0.0
    assert mean_ci([4.0]) == (4.0, None, 1)
    m, h, n = mean_ci([None, float("nan"), 1.0, 3.0])
    assert (m, n) == (2.0, 2) and h == pytest.approx(12.7062 * math.sqrt(2) / math.sqrt(2), rel=1e-4)
    assert mean_ci([1.0, float("inf")])[0] == math.inf
    assert math.isnan(mean_ci([])[0])


def test_mean_ci_of_infinite_values_keeps_their_sign():
    """An infinite value makes the mean infinite with its sign, −∞ as well as +∞ (a page shows "−∞", not the
    "—" of a NaN mean); +∞ and −∞ together have no mean."""
    inf = float("inf")
    assert mean_ci([-inf, 1.0, 2.0]) == (-inf, None, 3)
    assert mean_ci([inf, 1.0]) == (inf, None, 2)
    assert math.isnan(mean_ci([inf, -inf, 1.0])[0])
    assert fmt_ci(*mean_ci([-inf, 1.0])[:2]) == "−∞"


def test_diff_ci_of_seeds_that_agree_exactly_has_an_interval_of_width_zero():
    """Three seeds each, no spread: the standard error is 0, so the interval is [d, d] (any difference is
    significant), not "no interval" (which the claims read as one seed, the means compared)."""
    assert diff_ci([1.0, 1.0, 1.0], [2.0, 2.0, 2.0]) == (-1.0, 0.0)
    assert diff_ci([3.0, 3.0], [3.0, 3.0]) == (0.0, 0.0)


def test_diff_ci_welch():
    d, h = diff_ci([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert d == 0.0 and h > 0
    d, h = diff_ci([10.0, 10.1, 9.9], [1.0, 1.1, 0.9])
    assert d == pytest.approx(9.0) and h < 1
    assert diff_ci([1.0], [2.0, 3.0]) == (-1.5, None)


def test_diff_ci_welch_unequal_sizes_by_hand():
    """Welch's interval with unequal sizes and variances, worked by hand: se² = s_a²/n_a + s_b²/n_b and
    Welch-Satterthwaite degrees of freedom, rounded down (conservative)."""
    # a: mean 3, s² = 2.5, s²/n = 0.5; b: mean 13, s² = 13, s²/n = 13/3;
    # dof = (0.5 + 13/3)² / (0.5²/4 + (13/3)²/2) = 2.47 → 2
    d, h = diff_ci([1.0, 2.0, 3.0, 4.0, 5.0], [10.0, 12.0, 17.0])
    assert d == -10.0 and h == pytest.approx(4.302653 * math.sqrt(0.5 + 13 / 3), rel=1e-6)
    # the first sample dominates: s_a²/n_a = 100/3, s_b²/n_b = 3.5/6;
    # dof = (100/3 + 7/12)² / ((100/3)²/2 + (7/12)²/5) = 2.07 → 2 (its n_a − 1 = 2 matters here)
    d, h = diff_ci([0.0, 10.0, 20.0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert d == pytest.approx(6.5) and h == pytest.approx(4.302653 * math.sqrt(100 / 3 + 7 / 12), rel=1e-6)


def test_diff_ci_welch_degrees_of_freedom_are_rounded_down_not_to_the_nearest():
    """dof = 2.94 is read as 2 (t* = 4.303), not 3 (t* = 3.182, a 26 % narrower interval). By hand: a = 0, 2, 4:
    s² = 4, s²/n = 4/3; b = 11, 12, 13: s² = 1, s²/n = 1/3; dof = (5/3)² / ((4/3)²/2 + (1/3)²/2) = 50/17 = 2.94.
    The examples above have dof 2.47 and 2.07, which rounding and flooring both read as 2."""
    d, h = diff_ci([0.0, 2.0, 4.0], [11.0, 12.0, 13.0])
    assert d == -10.0 and h == pytest.approx(4.302653 * math.sqrt(5 / 3), rel=1e-6)


def test_interpolation_reads_the_right_end_of_each_segment():
    assert interp_sorted([0.0, 2.0], [0.0, 4.0], 0.5) == pytest.approx(1.0)
    assert interp_path([0.0, 2.0], [0.0, 4.0], 0.5) == pytest.approx(1.0)
    assert interp_path([0.0, 2.0, 1.0], [0.0, 4.0, 100.0], 1.5) == pytest.approx(3.0)
    assert interp_path([2.0, 0.0], [4.0, 0.0], 0.5) == pytest.approx(1.0)  # a path going down in KL


def test_interpolation():
    assert interp_sorted([2.0, 0.0, 1.0], [20.0, 0.0, 10.0], 1.5) == pytest.approx(15.0)
    assert interp_sorted([0.0, 1.0], [0.0, 1.0], 1.5) is None
    # a path that goes out to 2 and comes back: the first crossing counts
    assert interp_path([0.0, 2.0, 1.0], [0.0, 4.0, 100.0], 1.0) == pytest.approx(2.0)
    assert interp_path([0.0, 1.0], [0.0, 1.0], 3.0) is None


def test_interpolation_reads_a_curves_ends_and_a_path_of_one_point_at_its_own_x():
    """A budget equal to the first or the last x of a curve lies on it (the sweep's smallest KL is matched), and
    a path of one evaluation reaches its own KL."""
    assert interp_sorted([2.0, 1.0], [20.0, 10.0], 1.0) == 10.0
    assert interp_sorted([2.0, 1.0], [20.0, 10.0], 2.0) == 20.0
    assert interp_sorted([1.5], [7.0], 1.5) == 7.0
    assert interp_path([1.5], [7.0], 1.5) == 7.0
    assert interp_path([1.5], [7.0], 1.0) is None


def test_format():
    assert fmt_ci(1.23456, 0.0123) == "1.235 ± 0.012"
    assert fmt_ci(1.0, None) == "1.000"
    assert fmt_ci(float("nan"), None) == "—"
    assert fmt_ci(float("inf"), None) == "∞"
    assert fmt_ci(123456.0, 10.0) == "123,456 ± 10"
    assert fmt_ci(10_000.0, 3.0) == "10,000 ± 3" and fmt_ci(9_999.5, None) == "9999.500"  # whole from 10,000 on


def test_finite_drops_none_nan_infinities_bools_and_text():
    """A flag stored as a metric (True) is no number of seeds' worth: only real finite numbers are kept."""
    assert finite([True, None, float("nan"), float("inf"), -float("inf"), "1", 2, 2.5, False]) == [2.0, 2.5]


def test_fmt_seeds_ci_says_over_how_many_of_the_seeds_the_mean_is():
    """By hand: 1 and 3 (a seed missing): mean 2, s = √2, t*_1 = 12.706, half-width 12.706·√2/√2 = 12.706;
    1, 2, 3: s = 1, t*_2 = 4.303, half-width 4.303/√3 = 2.484 (all seeds: no count)."""
    assert fmt_seeds_ci([1.0, None, 3.0]) == "2.000 ± 12.706 (2/3)"
    assert fmt_seeds_ci([1.0, float("nan"), 3.0, None]) == "2.000 ± 12.706 (2/4)"
    assert fmt_seeds_ci([1.0, 2.0, 3.0]) == "2.000 ± 2.484"
    assert fmt_seeds_ci([None, float("nan")]) == "—"  # no seed at all: nothing to count
    assert fmt_seeds_ci([3.0, 5.0, None], digits=0) == "4 ± 13 (2/3)"


def test_an_infinite_seed_counts_among_the_seeds_and_a_missing_one_does_not():
    """+∞ in one seed, another missing: the mean is +∞ over 2 of the 3 values, and the cell says so."""
    inf = float("inf")
    assert mean_ci([inf, None, 1.0]) == (inf, None, 2)
    assert fmt_seeds_ci([inf, None, 1.0]) == "∞ (2/3)"


def test_diff_ci_with_an_empty_side_has_no_difference():
    """No finite value on one side (every seed diverged): no difference and no interval, not a division by zero."""
    for a, b in (([], [1.0, 2.0]), ([1.0, 2.0], [None, float("nan")])):
        d, h = diff_ci(a, b)
        assert math.isnan(d) and h is None


def test_t_critical_refuses_what_has_no_critical_value():
    """No Student-t with fewer than one degree of freedom, and no interval that holds nothing or everything: a
    ValueError, not a division by zero (df = 0), an endless doubling (level 1) or a critical value of 0 (level 0)."""
    with pytest.raises(ValueError, match="df must be >= 1"):
        t_critical(0)
    for level in (0.0, 1.0):
        with pytest.raises(ValueError, match="level must lie in"):
            t_critical(3, level)


def test_fmt_ci_writes_large_negative_means_whole_as_it_does_large_positive_ones():
    """A mean below −10,000 (a reward summed over tokens, say) is as whole as one above +10,000."""
    assert fmt_ci(-123456.0, 10.0) == "-" + fmt_ci(123456.0, 10.0) == "-123,456 ± 10"


def test_interpolation_leaves_out_points_without_a_number():
    """A point whose KL or reward is NaN (an evaluation that lacks it) is left out of the curve and the path, which
    then run straight between their neighbours: half-way from (0, 0) to (2, 4) is 2."""
    nan = float("nan")
    assert interp_sorted([0.0, nan, 2.0], [0.0, 100.0, 4.0], 1.0) == pytest.approx(2.0)
    assert interp_sorted([0.0, 1.0, 2.0], [0.0, nan, 4.0], 1.0) == pytest.approx(2.0)
    assert interp_path([0.0, nan, 2.0], [0.0, 100.0, 4.0], 1.0) == pytest.approx(2.0)
    assert interp_path([0.0, 1.0, 2.0], [0.0, nan, 4.0], 0.5) == pytest.approx(1.0)


def test_a_kl_reached_twice_in_a_row_reads_the_first_point_at_it():
    """Two points at the same KL: a path reaches that KL at the earlier of them, and a curve reads the same value
    there whether the repeated KL is its first point or lies after another (the lower reward, which the segment
    coming from below ends on)."""
    assert interp_path([1.0, 1.0, 2.0], [5.0, 7.0, 9.0], 1.0) == 5.0
    assert interp_path([0.0, 1.0, 1.0], [0.0, 5.0, 7.0], 1.0) == 5.0
    first = interp_sorted([1.0, 1.0, 2.0], [7.0, 5.0, 9.0], 1.0)
    after = interp_sorted([0.0, 1.0, 1.0, 2.0], [0.0, 7.0, 5.0, 9.0], 1.0)
    assert first == after == 5.0
