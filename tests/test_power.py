import math
from dataclasses import replace

import numpy as np
import pytest

from bench import BenchError, stats
from bench.claims import CLAIMS, Check, Effect, W
from bench.power import Noise, design_power, needed, null_boundary, simulate

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


def test_paired_replicates_keep_only_the_spread_of_their_differences():
    """Text windows differ a lot from each other (sd 1 nat) but little between arms (sd 0.03 of the differences):
    the engine's paired interval sees only the latter, so must the simulation (the decoder track's Q4 'keeps
    quality': 64 windows, margin 0.007, power about 0.5 at no damage; unpaired it would be ~0)."""
    keeps = Effect("nll", W(quant="int8"), "below", 0.007, b=W(quant="fp32"), replicate="params.chunk")
    paired = design_power(keeps, Noise(1.0, 1.0, 64, 64, sd_pair=0.03), n_sim=400, effect=0.0)
    loose = design_power(keeps, Noise(1.0, 1.0, 64, 64), n_sim=400, effect=0.0)
    assert 0.3 < paired.power < 0.7 and loose.power < 0.1 and paired.fpr < 0.06
    assert not Noise(1.0, 1.0, 1, 1, sd_pair=0.03).paired        # one replicate each: nothing to pair
    with pytest.raises(BenchError, match="noise"):
        Noise(1.0, 1.0, 4, 4, sd_pair=-1.0)


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


# ------------------------------------------------------------------ power of a decided part, from its own rows

def _runs(a: list, b: list, metric: str = "acc") -> "pd.DataFrame":
    import pandas as pd
    rows = [{"claim": "X9", "metric": metric, "value": v, "seed": s, "method": m, "params": "{}", "source": "results",
             "scale": "toy", "info": "{}"}
            for m, vals in (("a", a), ("b", b)) for s, v in enumerate(vals)]
    return pd.DataFrame(rows)


def test_effect_for_reads_the_published_effect_or_the_rule_kind():
    from dataclasses import replace

    from bench.power import effect_for
    assert effect_for(ABOVE) is None                                  # a direction without a published size
    assert effect_for(replace(ABOVE, published=0.07)) == 0.07
    assert effect_for(replace(ABOVE, test="within", bound=0.01)) == 0.0            # equivalence: no difference
    assert effect_for(replace(ABOVE, bound=-0.02)) == 0.0                          # non-inferiority: "matches"


def test_the_published_effect_is_design_not_rule():
    """Setting the effect a part is powered for changes no fingerprint: it cannot move a verdict."""
    from dataclasses import replace

    from bench import prereg
    c = CLAIMS["P1"]
    bumped = replace(c, checks=tuple(replace(e, published=0.5) if isinstance(e, Effect) else e for e in c.checks))
    assert prereg.fingerprint(bumped) == prereg.fingerprint(c)
    assert prereg.fingerprint(replace(c, checks=tuple(replace(e, bound=0.01) if isinstance(e, Effect) else e
                                                      for e in c.checks))) != prereg.fingerprint(c)


def test_of_result_takes_the_noise_of_the_runs_rows_and_powers_at_the_published_effect():
    from dataclasses import replace

    from bench.claims.engine import evaluate_effect
    from bench.power import of_result
    rule = replace(ABOVE, published=0.05)
    quiet = evaluate_effect(_runs([0.60, 0.61, 0.62], [0.50, 0.51, 0.52]), "X9", rule)
    nz = quiet.noise[0]
    assert (nz.n_a, nz.n_b, nz.items) == (3, 3, 0) and math.isclose(nz.sd_a, 0.01) and math.isclose(nz.base, 0.51)
    loud = evaluate_effect(_runs([0.6, 0.2, 0.9], [0.1, 0.5, 0.8]), "X9", rule)
    hi, lo = of_result(quiet), of_result(loud, need=True)
    assert hi.power.power > 0.8 and lo.power.power < 0.3 and hi.effect == 0.05
    assert lo.seeds_needed is None or lo.seeds_needed > 3                  # more seeds, or more than 64
    assert hi.power.fpr <= 0.05 and lo.power.fpr <= 0.05
    assert of_result(evaluate_effect(_runs([0.6, 0.61, 0.62], [0.5, 0.51, 0.52]), "X9", ABOVE)) is None  # no size
    one = evaluate_effect(_runs([0.6], [0.50, 0.51, 0.52]), "X9", rule).noise[0]
    assert one.n_a == 1 and math.isclose(one.sd_a, one.sd_b)               # one run borrows the other arm's spread


def test_power_cell_and_underpowered_reason_in_the_writers():
    from dataclasses import replace

    from bench.claims import Claim
    from bench.claims.engine import verdict
    from bench.claims.writers import outcome_text, power_cell
    claim = Claim(id="X9", family="lora", title="t", statement="s", published="p", scales=("toy",), group="lora",
                  metric="acc", checks=(replace(ABOVE, published=0.05, part="gain"),
                                        Check("acc", ">=", 0.0, part="sane")))
    v = verdict(claim, _runs([0.6, 0.2, 0.9], [0.1, 0.5, 0.8]))
    assert v.parts["gain"] == stats.INCONCLUSIVE
    assert power_cell(v).startswith("gain: 0.") and "FPR" in power_cell(v)
    assert "underpowered: power" in outcome_text(v) and "seeds per arm" in outcome_text(v)
    only_checks = replace(claim, checks=(Check("acc", ">=", 0.0),))
    assert power_cell(verdict(only_checks, _runs([0.6], [0.5]))) == "-"


def test_a_part_without_a_published_size_shows_its_design_power_precondition():
    """issue 30: P3's ablations aim at a stored run's difference (the paper has plots only), so their Effect has no
    published size; the power column shows the part's design-power precondition instead of n/a."""
    import pandas as pd

    from bench.claims import Claim
    from bench.claims.engine import verdict
    from bench.claims.writers import checks_markdown, power_cell
    pre = Check("design_power", ">=", 0.8, W(**{"params.part": "gain"}), agg="min", part="gain")
    claim = Claim(id="X9", family="lora", title="t", statement="s", published="p", scales=("toy",), group="lora",
                  metric="acc", checks=(replace(ABOVE, part="gain"),), preconditions=(pre,))
    runs = _runs([0.60, 0.61, 0.62], [0.50, 0.51, 0.52])
    assert power_cell(verdict(claim, runs)) == "n/a"                        # no design row: nothing to show
    design = pd.DataFrame([{"claim": "X9", "metric": "design_power", "value": 0.93, "seed": -1, "method": "-",
                            "params": '{"part": "gain"}', "source": "results", "scale": "exact", "info": "{}"}])
    v = verdict(claim, pd.concat([runs, design], ignore_index=True))
    assert v.parts["gain"] == stats.REPRODUCED and power_cell(v) == "design 0.93 (at the stored run's difference)"
    assert "| design 0.93 (at the stored run's difference) | reproduced |" in checks_markdown([v])


def test_not_reproduced_with_low_power_says_why_it_stands_when_the_interval_excludes_the_effect():
    """issue 31: a "not reproduced" under power 0.8 is either underpowered (interval holds the published effect)
    or answered (the interval excludes it); the outcome text says which."""
    from dataclasses import replace

    from bench.claims import Claim
    from bench.claims.engine import verdict
    from bench.claims.writers import answered, outcome_text, part_powers
    claim = Claim(id="X9", family="lora", title="t", statement="s", published="p", scales=("toy",), group="lora",
                  metric="acc", checks=(replace(ABOVE, published=0.05),))
    v = verdict(claim, _runs([0.30, 0.10, 0.20], [0.60, 0.35, 0.50]))
    (pp,) = part_powers(v).values()
    assert v.status == stats.NOT_REPRODUCED and pp.power.power < 0.8
    assert "answered whatever the power" in outcome_text(v) and "underpowered" not in outcome_text(v)
    quiet = verdict(claim, _runs([0.30, 0.31, 0.32], [0.60, 0.61, 0.62]))     # full power: nothing to explain
    assert quiet.status == stats.NOT_REPRODUCED and answered(quiet) == {}


def test_scale_design_and_registry_agree_on_published_effects():
    from bench.power import effect_for
    from reproductions.scale.design import PARTS
    for p in PARTS:
        if p.effect is not None:
            assert effect_for(CLAIMS[p.claim].checks[p.check]) == p.effect, (p.claim, p.part)


def test_an_effect_that_does_not_fit_on_a_proportion_has_no_room():
    """issue 33's X3: LoRA at 0.988 cannot be beaten by +3.7 points; the power is 0 and says why (room False),
    not the share of simulated reruns at an accuracy above 1."""
    gain = Effect("accuracy", W(method="dora"), "above", 0.0, b=W(method="lora"), items=600)
    full = Noise(0.02, 0.02, 8, 8, items=600, base=0.988, sd_pair=0.02)
    res = design_power(gain, full, n_sim=100, effect=0.037)
    assert res.power == 0.0 and not res.room
    assert design_power(gain, replace(full, base=0.9), n_sim=100, effect=0.037).room
    assert needed(gain, full, effect=0.037, n_sim=50) is None
