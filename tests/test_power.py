import math

import numpy as np
import pytest

from bench import BenchError, stats
from bench.claims import CLAIMS, Check, Effect, W
from bench.power import Noise, design_power, null_boundary, simulate

ABOVE = Effect("acc", W(method="a"), "above", 0.0, b=W(method="b"))   # a plain one-sided t-test of a - b > 0


def test_false_positive_rate_of_a_plain_t_test_rule_is_nominal():
    """Equal seed counts pair the arms: the interval is Student's paired t, exact for normal seed noise, so at the
    null boundary 'above' passes 2.5% of reruns (one side of a 95% interval) and above-or-below 5%."""
    noise = Noise(0.02, 0.02, 3, 3)
    res = design_power(ABOVE, noise, n_sim=3000, seed=1, effect=0.05)
    se = math.sqrt(0.025 * 0.975 / 3000)
    assert abs(res.fpr - 0.025) < 3.5 * se and res.null == (0.0,)
    below = Effect("acc", W(method="a"), "below", 0.0, b=W(method="b"))
    rng = np.random.default_rng(2)
    either = np.mean(simulate(ABOVE, noise, 0.0, 3000, rng) == stats.REPRODUCED) + \
        np.mean(simulate(below, noise, 0.0, 3000, rng) == stats.REPRODUCED)
    assert abs(either - 0.05) < 3.5 * math.sqrt(0.05 * 0.95 / 3000)


def test_power_rises_with_seeds_and_is_low_where_the_issue_says():
    powers = [design_power(ABOVE, Noise(0.02, 0.02, n, n), n_sim=600, seed=n, effect=0.03).power for n in (2, 3, 5, 10)]
    assert powers == sorted(powers) and powers[0] < 0.2 and powers[-1] > 0.75


def test_binomial_items_bound_an_equivalence_rule():
    """issue 31: L4's +-0.05 band on 400 test items can never pass (the binomial term alone is +-0.064);
    ten times the items can."""
    l4 = next(e for e in CLAIMS["L4"].checks if isinstance(e, Effect))
    few = design_power(l4, Noise(0.005, 0.005, items=400, base=0.6), n_sim=300)
    many = design_power(l4, Noise(0.005, 0.005, items=4000, base=0.6), n_sim=300)
    assert few.power == 0.0 and many.power > 0.8 and few.null == (-0.05, 0.05)
    assert many.fpr <= 0.05


def test_fixed_arm_and_one_arm_rules():
    zero_shot = Effect("acc", W(method="a"), "above", 0.03, b=W(method="zs"))
    noise = dict(n_a=3, n_b=1, items=600, base=0.3)
    fixed = design_power(zero_shot, Noise(0.01, 0.0, fixed_b=True, **noise), n_sim=300, effect=0.1)
    random = design_power(zero_shot, Noise(0.01, 0.0, **noise), n_sim=300, effect=0.1)
    assert fixed.power > random.power          # one trained seed borrows arm a's spread: a wider interval
    vs_ref = Effect("loss", W(method="a"), "below", 1.0, ref=2.0)
    res = design_power(vs_ref, Noise(0.05, 0.0), n_sim=200, effect=-1.5)
    assert res.power > 0.9 and res.fpr < 0.05


def test_deterministic_and_rejects_bad_input():
    a = design_power(ABOVE, Noise(0.02, 0.02), n_sim=100, seed=5, effect=0.04)
    assert a == design_power(ABOVE, Noise(0.02, 0.02), n_sim=100, seed=5, effect=0.04)
    assert math.isnan(design_power(ABOVE, Noise(0.02, 0.02), n_sim=50).power)   # no published effect given
    assert null_boundary(CLAIMS["L4"].checks[0]) == (-0.05, 0.05)
    with pytest.raises(BenchError, match="Effect"):
        design_power(Check("m", ">", 0), Noise(0.1, 0.1))
    with pytest.raises(BenchError, match="noise"):
        Noise(-1.0, 0.1)
    with pytest.raises(BenchError, match="n_sim"):
        design_power(ABOVE, Noise(0.1, 0.1), n_sim=0)


def test_needed_seeds_and_items_for_the_target_power():
    from bench.power import needed
    n = needed(ABOVE, Noise(0.02, 0.02), effect=0.03, n_sim=300)
    assert 7 <= n <= 13                           # simulated power 0.43 at 5 seeds, 0.85 at 10
    l4 = next(e for e in CLAIMS["L4"].checks if isinstance(e, Effect))
    items = needed(l4, Noise(0.005, 0.005, items=400, base=0.6), what="items", n_sim=200)
    assert 1500 <= items <= 4000
    # more seeds cannot shrink the error of the one fixed test set
    assert needed(l4, Noise(0.005, 0.005, items=400, base=0.6), what="seeds", n_sim=100, limit=16) is None
    with pytest.raises(BenchError, match="what"):
        needed(ABOVE, Noise(0.02, 0.02), effect=0.03, what="rungs")
