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


# issue 31: real L4 (LoRA r = 1, one seed) against full FT (3 seeds), 1,000 test items
L4_LORA, L4_FULL, L4_ITEMS = [0.768], [0.790, 0.761, 0.794], 1000


def test_one_seed_arm_borrows_the_other_arms_variance():
    iv = stats.diff_interval(L4_LORA, L4_FULL, L4_ITEMS)
    s_b = np.std(L4_FULL, ddof=1)
    se_i = math.sqrt(0.768 * 0.232 / 1000 + np.mean(L4_FULL) * (1 - np.mean(L4_FULL)) / 1000)
    # before the fix: df 0 -> z = 1.96, the one-seed arm's variance ignored: [-0.056, +0.028]
    bug = math.hypot(1.96 * s_b / math.sqrt(3), 1.96 * se_i)
    assert (iv.est - bug, iv.est + bug) == pytest.approx((-0.056, 0.028), abs=0.002)
    # t with 2 df but still without the single arm's variance: the issue's [-0.071, +0.044]
    t2 = math.hypot(4.303 * s_b / math.sqrt(3), 1.96 * se_i)
    assert (iv.est - t2, iv.est + t2) == pytest.approx((-0.071, 0.044), abs=0.002)
    # now (Crawford & Howell 1998): the single run has the full-FT arm's seed sd, se^2 = s^2 (1 + 1/3), df 2
    half = math.hypot(4.303 * s_b * math.sqrt(1 + 1 / 3), 1.96 * se_i)
    assert iv.hi - iv.lo == pytest.approx(2 * half, rel=0.05)
    assert iv.lo < -0.071 and iv.hi > 0.044 and iv.se_seeds == pytest.approx(s_b * math.sqrt(4 / 3), rel=0.05)
    assert stats.above(iv, -0.03) == stats.INCONCLUSIVE
    flipped = stats.diff_interval(L4_FULL, L4_LORA, L4_ITEMS)   # symmetric in which arm has one run
    assert flipped.hi - flipped.lo == pytest.approx(iv.hi - iv.lo, rel=0.05)


def test_one_seed_interval_is_the_pooled_t_interval_of_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    iv = stats.diff_interval(L4_LORA, L4_FULL)
    ci = scipy_stats.ttest_ind(L4_LORA, L4_FULL, equal_var=True).confidence_interval(0.95)
    assert (iv.lo, iv.hi) == pytest.approx((ci.low, ci.high), rel=0.05)


def test_fixed_arm_has_no_seed_variance():
    a, zero_shot = [0.60, 0.62, 0.64], [0.30]
    fixed = stats.diff_interval(a, zero_shot, b_fixed=True)
    assert fixed.se_seeds == pytest.approx(np.std(a, ddof=1) / math.sqrt(3), rel=0.05)
    random = stats.diff_interval(a, zero_shot)              # one trained seed: borrows a's sd
    assert random.se_seeds == pytest.approx(fixed.se_seeds * 2, rel=0.05)


def test_no_replicated_arm_gives_an_undefined_interval():
    for iv in (stats.diff_interval([0.7], [0.5], n_items=400), stats.diff_interval([0.7], ref=0.5)):
        assert iv.lo == -math.inf and iv.hi == math.inf and math.isclose(iv.est, 0.2)
        assert {stats.above(iv, 0.0), stats.below(iv, 0.0), stats.within(iv, 0.5)} == {stats.INCONCLUSIVE}
    both_fixed = stats.diff_interval([0.7], [0.5], n_items=400, a_fixed=True, b_fixed=True)
    assert math.isfinite(both_fixed.lo) and both_fixed.se_seeds == 0


def _row_by_row_se(x, seed, n_boot=2000):
    """The bootstrap as one row at a time computes it (the code before the batched version): the reference the
    batched one must equal bit for bit."""
    idx = np.random.default_rng(seed).integers(0, len(x), (n_boot, len(x)))
    return float(x[idx].mean(axis=1).std(ddof=1) * math.sqrt(len(x) / (len(x) - 1)))


@pytest.mark.parametrize("n", [2, 3, 8, 9, 17, 130])
@pytest.mark.parametrize("numpys_sum", [True, False])
def test_batched_bootstrap_equals_one_row_at_a_time(n, numpys_sum, monkeypatch):
    """The reruns' resamples are summed in numpy's pairwise order (or, where that is not this numpy's order, by
    numpy itself): either way the same bits as one resample matrix per row; 70 rows cross the 32-row chunks."""
    if not numpys_sum:
        monkeypatch.setattr(stats, "_pairwise_is_numpys", lambda: False)
    rng = np.random.default_rng(n)
    x = rng.normal(0.5, 0.1, (70, n)) * rng.uniform(0.01, 100, (70, n))
    seeds = rng.integers(2**31, size=70).tolist()
    got = stats._boot_sd_of_means(x, [np.random.default_rng(s) for s in seeds], 2000)
    assert got.tolist() == [_row_by_row_se(row, s) for row, s in zip(x, seeds)]


def test_pairwise_sum_is_this_numpys_order():
    """On the pinned numpy the fast path is taken (else the bootstrap falls back to numpy's own sum: same numbers,
    slower); a numpy that sums another way fails here, not in the stored intervals."""
    assert stats._pairwise_is_numpys()


def test_diff_intervals_equal_one_call_per_rerun():
    rng = np.random.default_rng(7)
    seeds = rng.integers(2**31, size=40).tolist()
    designs = [dict(a=rng.normal(0.6, 0.05, (40, 3)), b=rng.normal(0.5, 0.05, (40, 3)), n_items=400),   # paired
               dict(a=rng.normal(0.6, 0.05, (40, 3)), b=rng.normal(0.5, 0.05, (40, 5))),                # unpaired
               dict(a=rng.normal(0.6, 0.05, (40, 1)), b=rng.normal(0.5, 0.05, (40, 3)), n_items=1000),  # borrows
               dict(a=rng.normal(0.6, 0.05, (40, 4)), b=np.full((40, 1), 0.3), b_fixed=True),
               dict(a=rng.normal(0.6, 0.05, (40, 3)), ref=0.5),                                       # vs ref
               dict(a=rng.normal(0.6, 0.05, (40, 1)), b=np.full((40, 1), 0.5), n_items=400)]          # undefined
    for d in designs:
        kw = {k: v for k, v in d.items() if k not in ("a", "b")}
        batch = stats.diff_intervals(d["a"], d.get("b"), seeds=seeds, **kw)
        one = [stats.diff_interval(d["a"][r], None if d.get("b") is None else d["b"][r], seed=s, **kw)
               for r, s in enumerate(seeds)]
        assert [repr(iv) for iv in batch] == [repr(iv) for iv in one]
    with pytest.raises(ValueError, match="R seeds"):
        stats.diff_intervals(np.zeros((3, 2)), seeds=[0])
