import math

import numpy as np
import pytest

from bench import stats


def test_interval_covers_and_t_scales_small_samples():
    iv = stats.diff_interval([0.5, 0.52, 0.54], [0.4, 0.41, 0.42])
    assert iv.lo < 0.11 < iv.hi and iv.est == 0.11 or math.isclose(iv.est, 0.11)
    assert iv.hi - iv.lo > 2 * 1.96 * iv.se_seeds  # t(2) = 4.3, not z


def test_items_error_added_for_proportions():
    iv = stats.diff_interval([0.5] * 3, [0.5] * 3, n_items=400)
    assert iv.se_seeds == 0 and math.isclose(iv.se_items, math.sqrt(2 * 0.25 / 400))
    assert stats.within(iv, 0.004) == stats.INCONCLUSIVE and stats.within(iv, 0.1) == stats.REPRODUCED


def test_three_way_tests():
    iv = stats.diff_interval([1.0, 1.1, 0.9], ref=0.0)
    assert stats.above(iv, 0.0) == stats.REPRODUCED and stats.above(iv, 5.0) == stats.NOT_REPRODUCED
    assert stats.below(iv, 0.0) == stats.NOT_REPRODUCED and stats.above(iv, 1.0) == stats.INCONCLUSIVE
    nan = stats.diff_interval([float("nan"), 1.0])
    assert stats.above(nan, 0.0) == stats.NOT_REPRODUCED


def test_deterministic():
    a, b = np.array([0.1, 0.3, 0.2]), np.array([0.0, 0.1, 0.2])
    assert stats.diff_interval(a, b) == stats.diff_interval(a, b)


def test_spearman_ranks_ties_and_degenerate_inputs():
    from bench.stats import spearman
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486832980505138)   # average ranks for ties
    assert math.isnan(spearman([1], [2])) and math.isnan(spearman([1, 1, 1], [1, 2, 3]))
