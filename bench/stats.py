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

import functools
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


def _boot_sd_of_means(x: np.ndarray, rngs: list, n_boot: int, chunk: int = 32) -> np.ndarray:
    """Bootstrap standard error of each row's mean, small-sample corrected (sqrt(n/(n-1))). x: (R, n) values,
    rngs: one generator per row (each draws its row's (n_boot, n) resample indices) -> (R,). Bit for bit what
    `x[r][idx].mean(axis=1).std(ddof=1)` gives row by row: the resamples' sums are taken column by column in
    numpy's own order (`_pairwise_sum`), `chunk` rows at a time, not as n_boot tiny reductions per row."""
    n = x.shape[1]
    sd = np.empty(len(x))
    picked = np.empty((min(chunk, len(x)), n, n_boot))                      # (c, n, n_boot), reused
    for lo in range(0, len(x), chunk):
        g = rngs[lo:lo + chunk]
        for r, gen in enumerate(g):                # mode="clip" writes straight into `out` (indices are in range)
            np.take(x[lo + r], gen.integers(0, n, (n_boot, n)).T, out=picked[r], mode="clip")
        sums = _pairwise_sum(list(picked[:len(g)].transpose(1, 0, 2))) if _pairwise_is_numpys() else \
            np.ascontiguousarray(picked[:len(g)].transpose(0, 2, 1)).sum(axis=2)   # (c, n_boot)
        sd[lo:lo + len(g)] = (sums / n).std(axis=1, ddof=1)                 # the means' sd, per row
    return sd * math.sqrt(n / (n - 1))


def _pairwise_sum(terms: list) -> np.ndarray:
    """Elementwise sum of equal-shape arrays in the order numpy sums a contiguous axis (pairwise summation:
    blocks of 8 partial sums, halves above 128 terms; numpy/_core/src/umath/loops_utils.h.src, pairwise_sum),
    so a reduction over a short axis becomes a few whole-array additions with the same rounding."""
    n = len(terms)
    if n < 8:
        res = np.zeros_like(terms[0])
        for t in terms:
            res += t
        return res
    if n <= 128:
        r = [t.copy() for t in terms[:8]]
        i = 8
        while i < n - n % 8:
            for j in range(8):
                r[j] += terms[i + j]
            i += 8
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        for t in terms[i:]:
            res += t
        return res
    half = n // 2
    half -= half % 8
    return _pairwise_sum(terms[:half]) + _pairwise_sum(terms[half:])


@functools.cache
def _pairwise_is_numpys() -> bool:
    """Whether `_pairwise_sum` reproduces this numpy's `sum(axis=-1)` bit for bit (checked once per process on
    spread-out values, 1-300 terms); if not (another numpy, another summation path), the resamples are summed
    by numpy itself: slower, the same numbers."""
    x = np.random.default_rng(0).normal(size=(2000, 300)) * np.logspace(-4, 4, 300)   # (n_boot, terms)
    return all(np.array_equal(_pairwise_sum(list(x[:, :n].T)), x[:, :n].sum(axis=1))
               for n in (*range(1, 41), 63, 64, 65, 127, 128, 129, 136, 255, 256, 257, 300))


def diff_interval(a, b=None, n_items: int = 0, ref: float = 0.0, n_boot: int = 2000, seed: int = 0,
                  a_fixed: bool = False, b_fixed: bool = False) -> Interval:
    """95% interval of mean(a) - mean(b) (b None: mean(a) - ref). a, b: one value per seed, same order
    when paired (equal length > 1). n_items > 0: the values are proportions over that many test items.
    a_fixed / b_fixed: that arm has no randomness (a deterministic evaluation, e.g. the zero-shot model): no
    seed variance. An arm of one random run borrows the other arm's seed variance (see the module docstring);
    with none to borrow, lo = -inf and hi = +inf. NaN or empty values: a NaN interval."""
    two = b is not None
    a = np.asarray(a, float)
    b = np.asarray(b if two else [ref], float)
    if a.size == 0 or b.size == 0 or np.isnan(a).any() or np.isnan(b).any():
        return Interval(math.nan, math.nan, math.nan, int(a.size), int(b.size), math.nan, math.nan)
    return diff_intervals(a[None], b[None] if two else None, n_items, ref, n_boot, [seed], a_fixed, b_fixed)[0]


def diff_intervals(a, b=None, n_items: int = 0, ref: float = 0.0, n_boot: int = 2000, seeds=(0,),
                   a_fixed: bool = False, b_fixed: bool = False) -> list[Interval]:
    """`diff_interval` for R reruns of one design at once (bench.power's simulated reruns): a (R, n_a) and b
    (R, n_b) or None, finite values, one bootstrap seed per rerun -> R intervals, the same numbers bit for bit
    as R calls of diff_interval (each rerun draws its resamples from its own generator; they are averaged in one
    array operation: the simulated reruns of the scale design take 14 s, not 23 s, on one slow core)."""
    two = b is not None
    a = np.asarray(a, float)
    b = np.asarray(b, float) if two else np.full((len(a), 1), ref, float)
    if a.ndim != 2 or b.ndim != 2 or len(a) != len(b) or len(seeds) != len(a):
        raise ValueError(f"diff_intervals needs a (R, n_a), b (R, n_b) and R seeds, got {a.shape}, {b.shape}, "
                         f"{len(seeds)}")
    rngs = [np.random.default_rng(s) for s in seeds]
    b_fixed = b_fixed or not two                   # a constant reference has no variance
    (n_a, n_b), paired = (a.shape[1], b.shape[1]), two and a.shape[1] == b.shape[1] > 1
    mean_a, mean_b = a.mean(axis=1), b.mean(axis=1)
    if paired:
        se_s = _boot_sd_of_means(a - b, rngs, n_boot)
        dfs = [n_a - 1] * len(a)
    else:
        se_s, dfs = _unpaired_se(a, b, a_fixed, b_fixed, n_boot, rngs)
    out = []
    for ma, mb, se, df in zip(mean_a, mean_b, se_s, dfs):
        est = float(ma - mb)
        se_i = 0.0
        if n_items:
            pa, pb = np.clip(ma, 0, 1), np.clip(mb, 0, 1)
            se_i = math.sqrt(pa * (1 - pa) / n_items + (pb * (1 - pb) / n_items if two else 0.0))
        if df < 1:                                 # no seed variance can be estimated
            out.append(Interval(est, -math.inf, math.inf, n_a, n_b, math.nan, se_i))
            continue
        half = math.hypot(t975(df) * float(se), Z975 * se_i)
        out.append(Interval(est, est - half, est + half, n_a, n_b, float(se), se_i))
    return out


def _unpaired_se(a: np.ndarray, b: np.ndarray, a_fixed: bool, b_fixed: bool, n_boot: int, rngs) -> tuple[list, list]:
    """Per rerun (rows of a (R, n_a), b (R, n_b)): the standard error of mean(a) - mean(b) from the seeds, and its
    degrees of freedom (0: not estimable). Replicated arms: bootstrap se each (a's resamples drawn first from a
    rerun's generator), df = min(n) - 1. A fixed arm adds nothing; a single random run borrows the other arm's
    per-seed sd (Crawford & Howell 1998), df = that arm's n - 1."""
    arms = ((a, a_fixed), (b, b_fixed))
    reps = [x for x, _ in arms if x.shape[1] > 1]
    if not reps:
        return [0.0 if a_fixed and b_fixed else math.nan] * len(a), [1 if a_fixed and b_fixed else 0] * len(a)
    ses = [_boot_sd_of_means(x, rngs, n_boot) if x.shape[1] > 1 else None for x, _ in arms]   # a's draws first
    rep = ses[0] if a.shape[1] > 1 else ses[1]                         # the replicated arm's se ...
    se = []
    for r in range(len(a)):
        borrowed = float(rep[r]) * math.sqrt(reps[0].shape[1])        # ... times sqrt(n): its per-seed sd
        parts = [float(s[r]) if s is not None else 0.0 if fixed else borrowed for (_, fixed), s in zip(arms, ses)]
        se.append(math.hypot(*parts))
    return se, [min(x.shape[1] for x in reps) - 1] * len(a)


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
