"""Uncertainty from the data: intervals for a difference of seed means, and the three-way tests on them.

The results store one value per run (seed), mostly NOT one per test item, so the interval combines
- the seed-to-seed spread, by a bootstrap over seeds (paired when both arms ran the same seeds), its
  standard error corrected for small samples (sqrt(n/(n-1))) and scaled by Student's t with n-1
  degrees of freedom (a bootstrap-t-like interval: with 3 seeds the plain percentile bootstrap is
  far too narrow; Efron & Tibshirani 1993, ch. 12-13);
- the sampling error of the test items, when the metric is a proportion over `n_items` items: the
  binomial variance p(1-p)/n of each arm's accuracy on the one fixed test set (shared by its seeds,
  so the seed spread does not contain it; unpaired, hence conservative for a paired difference).
Degrees of freedom (unpaired arms of n_a and n_b seeds): min(n_a, n_b) - 1, the conservative bound of Welch's
(Welch 1947; Welch-Satterthwaite df >= min - 1). An arm of ONE run has no variance estimate of its own:
- a fixed arm (no randomness: a zero-shot evaluation, seed -1; `b_fixed` / `a_fixed`) has none to estimate
  (variance 0), and the df are the other arm's n - 1;
- an unreplicated random arm (one trained seed) is taken to have the other arm's seed variance, as in the
  comparison of a single case with a small control sample (Crawford & Howell 1998, "Comparing an individual's
  test score against norms derived from small samples", The Clinical Neuropsychologist 12(4): 482-486; it is
  Student's pooled two-sample t with n_a = 1): se^2 = s_b^2 (1/n_a + 1/n_b), df = n_b - 1;
- no arm with two or more runs (one random run against one run or a constant): no seed variance can be
  estimated, the interval is (-inf, +inf) and every test on it inconclusive.
(Before issue 31 an unreplicated arm contributed no variance and the df fell to 0, i.e. z = 1.96.)
Level: 95% (two-sided), i.e. a one-sided 2.5% error on each side. Tests on the interval:
- above(floor): reproduced when lo > floor, not reproduced when hi < floor, else inconclusive;
- within(band): equivalence (two one-sided tests at 2.5% each; Schuirmann 1987): reproduced when
  the interval lies inside [-band, band], not reproduced when it lies outside, else inconclusive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

LEVEL = 0.95
Z975 = 1.959963984540054
# Student t, 0.975 quantile, df = 1..30 (any table, e.g. NIST/SEMATECH e-Handbook 1.3.6.7.2)
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042)

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"


def t975(df: int) -> float:
    return T975[df - 1] if 1 <= df <= len(T975) else Z975


@dataclass(frozen=True)
class Interval:
    est: float
    lo: float
    hi: float
    n_a: int
    n_b: int
    se_seeds: float
    se_items: float

    def text(self, scale: float = 1.0, unit: str = "") -> str:
        if math.isnan(self.est):
            return "nan"
        f = lambda x: f"{x * scale:+.3g}"  # noqa: E731
        return f"{f(self.est)}{unit} [{f(self.lo)}, {f(self.hi)}] (95% CI, {self.n_a}+{self.n_b} runs)"


def _boot_se(a: np.ndarray, b: np.ndarray, paired: bool, n_boot: int, rng) -> float:
    """Bootstrap standard error of mean(a) - mean(b) over seeds, small-sample corrected."""
    def se_mean(x):
        if len(x) < 2:
            return 0.0
        idx = rng.integers(0, len(x), (n_boot, len(x)))
        return float(x[idx].mean(axis=1).std(ddof=1) * math.sqrt(len(x) / (len(x) - 1)))
    if paired:
        return se_mean(a - b)
    return math.hypot(se_mean(a), se_mean(b))


def diff_interval(a, b=None, n_items: int = 0, ref: float = 0.0, n_boot: int = 2000, seed: int = 0,
                  a_fixed: bool = False, b_fixed: bool = False) -> Interval:
    """95% interval of mean(a) - mean(b) (b None: mean(a) - ref). a, b: one value per seed, same order
    when paired (equal length > 1). n_items > 0: the values are proportions over that many test items.
    a_fixed / b_fixed: that arm has no randomness (a deterministic evaluation, e.g. the zero-shot model): no
    seed variance. An arm of one random run borrows the other arm's seed variance (see the module docstring);
    with none to borrow, lo = -inf and hi = +inf."""
    two = b is not None
    a = np.asarray(a, float)
    b = np.asarray(b if two else [ref], float)
    if a.size == 0 or b.size == 0 or np.isnan(a).any() or np.isnan(b).any():
        return Interval(math.nan, math.nan, math.nan, int(a.size), int(b.size), math.nan, math.nan)
    rng = np.random.default_rng(seed)
    b_fixed = b_fixed or not two                   # a constant reference has no variance
    paired = two and a.size == b.size > 1
    est = float(a.mean() - b.mean())
    se_i = 0.0
    if n_items:
        pa, pb = np.clip(a.mean(), 0, 1), np.clip(b.mean(), 0, 1)
        se_i = math.sqrt(pa * (1 - pa) / n_items + (pb * (1 - pb) / n_items if two else 0.0))
    if paired:
        se_s, df = _boot_se(a, b, True, n_boot, rng), a.size - 1
    else:
        se_s, df = _unpaired_se(a, b, a_fixed, b_fixed, n_boot, rng)
    if df < 1:                                     # no seed variance can be estimated
        return Interval(est, -math.inf, math.inf, int(a.size), int(b.size), math.nan, se_i)
    half = math.hypot(t975(df) * se_s, Z975 * se_i)
    return Interval(est, est - half, est + half, int(a.size), int(b.size), se_s, se_i)


def _unpaired_se(a: np.ndarray, b: np.ndarray, a_fixed: bool, b_fixed: bool, n_boot: int, rng) -> tuple[float, int]:
    """(standard error of mean(a) - mean(b) from the seeds, its degrees of freedom); df 0: not estimable.
    Replicated arms: bootstrap se each, df = min(n) - 1. A fixed arm adds nothing; a single random run borrows
    the other arm's per-seed sd (Crawford & Howell 1998), df = that arm's n - 1."""
    arms = ((a, a_fixed), (b, b_fixed))
    reps = [x for x, _ in arms if x.size > 1]
    if not reps:
        return (0.0, 1) if a_fixed and b_fixed else (math.nan, 0)
    ses = [_boot_se(x, x[:0], False, n_boot, rng) if x.size > 1 else 0.0 for x, _ in arms]   # a's draws first
    borrowed = ses[0 if a.size > 1 else 1] * math.sqrt(reps[0].size)   # the replicated arm's per-seed sd
    parts = [se if x.size > 1 else 0.0 if fixed else borrowed for (x, fixed), se in zip(arms, ses)]
    return math.hypot(*parts), min(x.size for x in reps) - 1


def above(iv: Interval, floor: float) -> str:
    """'beats by more than floor': the whole interval above it."""
    if math.isnan(iv.est):
        return NOT_REPRODUCED
    return REPRODUCED if iv.lo > floor else NOT_REPRODUCED if iv.hi < floor else INCONCLUSIVE


def below(iv: Interval, ceiling: float) -> str:
    """'is lower by more than |ceiling|': the whole interval below it."""
    if math.isnan(iv.est):
        return NOT_REPRODUCED
    return REPRODUCED if iv.hi < ceiling else NOT_REPRODUCED if iv.lo > ceiling else INCONCLUSIVE


def within(iv: Interval, band: float) -> str:
    """Equivalence: the interval inside [-band, band]; outside it entirely: not equivalent."""
    if math.isnan(iv.est):
        return NOT_REPRODUCED
    if -band <= iv.lo and iv.hi <= band:
        return REPRODUCED
    return NOT_REPRODUCED if iv.lo > band or iv.hi < -band else INCONCLUSIVE


TESTS = {"above": above, "below": below, "within": within}


def spearman(x, y) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either side is constant or < 2 points."""
    x, y = pd.Series(x, dtype=float), pd.Series(y, dtype=float)
    if len(x) < 2 or x.isna().any() or y.isna().any():
        return math.nan
    rx, ry = x.rank().to_numpy(), y.rank().to_numpy()   # average ranks for ties
    if rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])
