"""Design power of a two-arm difference rule (issue 31, item 2): could this rerun come out either way?

`design_power(rule, noise)` simulates reruns of one `bench.claims.Effect` on the design the noise describes
and decides each with the engine's own interval and test (`bench.stats.diff_interval`, here all reruns at once
through `bench.stats.diff_intervals`, the same numbers; `bench.stats.TESTS`),
as `bench.claims.engine.evaluate_effect` does for one group of rows:
- every seed of an arm scores  true arm mean + the arm's test-set error + seed noise  (the seeds of an arm
  share one fixed test set: its error is drawn once per rerun and arm, Binomial(items, p) / items - p, where
  the rule's metric is a proportion over `items` test items; the seed noise is Normal(0, seed sd));
- the power is the share of reruns that decide "reproduced" when the true difference (a - b) is the published
  effect; the false-positive rate is that share at the null boundary: the rule's bound for "above" / "below"
  (the difference that must NOT count as reproduced), the band's edge for "within" (the larger of the two
  edges' rates).
The interval is two-sided 95%, so a one-sided rule ("above", "below") has a nominal false-positive rate of
2.5% at its boundary, an equivalence ("within", two one-sided tests at 2.5%, Schuirmann 1987) at most 2.5% at
either edge; a two-sided test (above OR below 0) 5%. Monte Carlo error: sqrt(p (1 - p) / n_sim).
Not modelled yet: rules read per rung (`by`: one group here), log-scale rules are simulated on the log scale
with seed noise only.
Paired arms (equal replicate counts > 1, as the engine pairs them: the same seeds, or the same text windows) share
a common draw per replicate; only the sd of the per-replicate differences (`Noise.sd_pair`) reaches the interval,
so a design whose replicates differ a lot from each other (text windows) but little between arms is not
under-stated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from bench import BenchError, stats


@dataclass(frozen=True)
class Noise:
    """The noise of one rerun, per arm, in the rule's units (proportions 0-1 for accuracies; log units for a
    `log` rule). Measured from the run's own rows: the per-arm seed sd and the test size."""

    sd_a: float              # seed-to-seed standard deviation of arm a
    sd_b: float              # ... of arm b (0 for a fixed arm)
    n_a: int = 3             # seeds (runs) of arm a
    n_b: int = 3             # seeds of arm b (1 and fixed_b: one deterministic evaluation, e.g. zero-shot)
    items: int = 0           # test items when the metric is a proportion (binomial test-set error); 0: none
    base: float = 0.5        # arm b's true mean (the binomial variance p(1-p) depends on it); arm a's = base + effect
    fixed_b: bool = False    # arm b has no seed randomness (seed -1 rows): no seed variance, as the engine reads it
    sd_pair: float | None = None   # sd of the per-replicate differences a - b when the arms pair (n_a == n_b > 1);
                                   # None: the arms' seed noise is independent

    @property
    def paired(self) -> bool:
        return self.sd_pair is not None and self.n_a == self.n_b > 1 and not self.fixed_b

    def __post_init__(self):
        if self.n_a < 1 or self.n_b < 1 or self.sd_a < 0 or self.sd_b < 0 or self.items < 0 \
                or (self.sd_pair is not None and not self.sd_pair >= 0):
            raise BenchError(f"noise needs n >= 1, sd >= 0 and items >= 0, got {self}")
        if self.items and not 0 <= self.base <= 1:
            raise BenchError(f"a proportion's base must be in [0, 1], got {self.base}")


@dataclass(frozen=True)
class Power:
    power: float             # share of reruns deciding "reproduced" at the published effect (NaN: none given)
    fpr: float               # share deciding "reproduced" at the null boundary
    effect: float            # the true difference the power is for
    null: tuple              # the true difference(s) the false-positive rate is for
    n_sim: int
    room: bool = True        # False: the effect does not fit on a proportion's scale beside arm b's level (power 0)

    @property
    def mc_se(self) -> float:
        """Monte Carlo standard error of a rate near 0.5 (the largest): 0.5 / sqrt(n_sim)."""
        return 0.5 / math.sqrt(self.n_sim)


def null_boundary(rule) -> tuple[float, ...]:
    """The true differences at which "reproduced" is a false positive: the bound of above / below, both band
    edges of within."""
    return (-rule.bound, rule.bound) if rule.test == "within" else (rule.bound,)


def simulate(rule, noise: Noise, true_diff: float, n_sim: int, rng) -> np.ndarray:
    """Outcomes of n_sim simulated reruns of `rule` (an Effect) with true difference a - b = true_diff."""
    test = stats.TESTS[rule.test]
    two = rule.b is not None
    base = noise.base if two else rule.ref
    pa, pb = base + true_diff, base
    a, b, seeds = [], [], []                # (n_sim, n_a), (n_sim, n_b), (n_sim,): drawn rerun by rerun
    for _ in range(n_sim):
        if two and noise.paired:           # a common draw per replicate; the pairs differ by sd_pair
            common = rng.normal(0.0, noise.sd_b, noise.n_b)
            b.append(pb + _test_set_error(pb, noise.items, rng) + common)
            a.append(pa + _test_set_error(pa, noise.items, rng) + common + rng.normal(0.0, noise.sd_pair, noise.n_a))
        else:
            a.append(pa + _test_set_error(pa, noise.items, rng) + rng.normal(0.0, noise.sd_a, noise.n_a))
            if two:
                b.append(pb + _test_set_error(pb, noise.items, rng) + rng.normal(0.0, noise.sd_b, noise.n_b))
        seeds.append(int(rng.integers(2**31)))
    ivs = stats.diff_intervals(np.array(a), np.array(b) if two else None, noise.items, ref=rule.ref, seeds=seeds,
                               b_fixed=two and noise.fixed_b)
    return np.array([test(iv, rule.bound) for iv in ivs])


def _test_set_error(p: float, items: int, rng) -> float:
    if not items:
        return 0.0
    p = min(max(p, 0.0), 1.0)
    return rng.binomial(items, p) / items - p


def design_power(rule, noise: Noise, n_sim: int = 1000, seed: int = 0, effect: float | None = None) -> Power:
    """Power at the published `effect` (a - b; for a "within" rule 0 when not given: equivalence at no
    difference) and the false-positive rate at the null boundary, each over n_sim simulated reruns (seeded).
    Raises BenchError for a rule that is not a two-arm (or one-arm vs ref) Effect, or bad noise."""
    from bench.claims import Effect
    if not isinstance(rule, Effect):
        raise BenchError(f"design_power needs an Effect rule (a difference with an interval), "
                         f"got {type(rule).__name__}")
    if n_sim < 1:
        raise BenchError(f"n_sim must be >= 1, got {n_sim}")
    if effect is None and rule.test == "within":
        effect = 0.0
    rng = np.random.default_rng(seed)
    power, room = math.nan, True
    if effect is not None:
        room = fits(rule, noise, effect)
        power = float(np.mean(simulate(rule, noise, effect, n_sim, rng) == stats.REPRODUCED)) if room else 0.0
    nulls = null_boundary(rule)
    fpr = max(float(np.mean(simulate(rule, noise, x, n_sim, rng) == stats.REPRODUCED)) for x in nulls)
    return Power(power, fpr, math.nan if effect is None else float(effect), nulls, n_sim, room)


def fits(rule, noise: Noise, effect: float) -> bool:
    """Whether a true difference `effect` can happen at all: a proportion (noise.items > 0) cannot leave [0, 1], so
    beside an arm b at 0.988 a +0.037 gain has no room (its power is 0, whatever the seeds). Log rules and
    unbounded metrics always fit."""
    if not noise.items or rule.log:
        return True
    base = noise.base if rule.b is not None else rule.ref
    return 0.0 <= base + effect <= 1.0


def needed(rule, noise: Noise, effect: float | None = None, target: float = 0.8, what: str = "seeds",
           n_sim: int = 400, seed: int = 0, limit: int | None = None) -> int | None:
    """About how many seeds per arm (what="seeds": n_a = n_b = n; a fixed arm b keeps its one evaluation) or
    test items (what="items") give `target` power at `effect`: doubling from the noise's own count, then
    bisecting (power is monotone in n up to Monte Carlo error, so "about"). None: `limit` (default
    `seeds_limit(noise)`, 10^6 items) does not reach it. For the report line "about N seeds / M items would give 0.8"."""
    if what not in ("seeds", "items"):
        raise BenchError(f"what must be 'seeds' or 'items', got {what!r}")
    limit = limit or (seeds_limit(noise) if what == "seeds" else 10**6)

    def power(n: int) -> float:
        if what == "seeds":
            kw = {"n_a": n} if noise.fixed_b or rule.b is None else {"n_a": n, "n_b": n}
        else:
            kw = {"items": n}
        return design_power(rule, replace(noise, **kw), n_sim, seed, effect).power

    lo = max(1, noise.n_a if what == "seeds" else noise.items)
    if effect is not None and not fits(rule, noise, effect):
        return None
    if power(lo) >= target:
        return lo
    hi = lo * 2
    while hi <= limit and power(hi) < target:
        lo, hi = hi, hi * 2
    if hi > limit:
        return None
    while hi - lo > max(1, lo // 20):        # to about 5%
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if power(mid) >= target else (mid, hi)
    return hi


def seeds_limit(noise: Noise | None) -> int:
    """The most replicates per arm `needed` tries: 64 seeds, or 16x the run's own count where that is larger (an
    arm of 64 text windows may need a few hundred)."""
    return max(64, 16 * (noise.n_a if noise is not None else 0))


def effect_for(rule) -> float | None:
    """The true difference a part's power is for: the rule's `published` effect; without one, no difference (0)
    for an equivalence ("within") and for a non-inferiority ("above" a negative margin, "below" a positive one:
    the claim is "matches"); None for a directional rule without a published size (no power can be stated)."""
    if rule.published is not None:
        return float(rule.published)
    if rule.test == "within" or (rule.test == "above" and rule.bound < 0) or (rule.test == "below" and rule.bound > 0):
        return 0.0
    return None


@dataclass(frozen=True)
class PartPower:
    """The design power of one decided Effect, from the noise of the run's own rows (the worst group picked)."""

    power: Power
    effect: float
    seeds_needed: int | None = None    # about this many seeds per arm give TARGET power (None: over seeds_limit, or not asked)
    noise: Noise | None = None
    items_needed: int | None = None    # ... or this many test items at the run's seeds (proportions; None: over 10^6)


TARGET = 0.8


def of_result(result, n_sim: int = 1000, seed: int = 0, need: bool = False) -> PartPower | None:
    """Design power of an evaluated Effect (a `bench.claims.engine.CheckResult`): simulated reruns of its rule with
    the noise measured in its own rows (per group picked; the part needs every group, so the lowest power and the
    highest false-positive rate are kept), at `effect_for(rule)`. need=True: also about how many seeds per arm
    give TARGET. None: not an Effect, no rows, NaN values, or no effect size to aim at."""
    rule = result.check
    effect = effect_for(rule) if hasattr(rule, "published") else None
    noises = [n for n in getattr(result, "noise", []) if n is not None]
    if effect is None or not noises or len(noises) != len(result.noise):
        return None
    per = [design_power(rule, n, n_sim, seed, effect) for n in noises]
    worst = min(range(len(per)), key=lambda k: per[k].power)
    pw = replace(per[worst], fpr=max(p.fpr for p in per))
    nz = noises[worst]
    seeds = needed(rule, nz, effect, TARGET, "seeds", n_sim=400, seed=seed) if need else None
    items = needed(rule, nz, effect, TARGET, "items", n_sim=400, seed=seed) if need and nz.items else None
    return PartPower(pw, effect, seeds, nz, items)
