"""Constants and rule helpers the claim families share (preconditions built the same way for many claims)."""

from __future__ import annotations

import math

from .model import Check, Effect, R, W

DATE = "2026-11-30"   # issue 13: verdicts a skeptic accepts
KNOWLEDGE_ITEMS = 400  # knowledge test items: stored accuracies are multiples of 1/400 (harness: record n_test)
NEXTMONTH_ITEMS = 600  # next-month test items (150 made-up test people x 4 rows); rows record their own n_test
LOSS_FACTOR = math.log(3)  # "converged alike": seed-mean training losses within a factor of 3
DATE_14 = "2026-12-01"  # issue 14: converged methods on a task that needs adaptation
ONE_SIDED_SHIFT = ("A run still improving at its cap blocks its part unless its further training can only move the "
                   "part's difference the way that keeps the outcome (one-sided: the arm a's runs move it up, b's "
                   "down; e.g. an interval above its floor stays above when arm a trains on); early stopping keeps the "
                   "weights of the best validation loss, so training on can only lower that loss, and is taken to "
                   "raise the score.")
ONE_SIDED = ("A run still improving at its cap blocks its part unless its further training cannot change the outcome "
             "(one-sided: the arm a's runs move the difference up, b's down; early stopping keeps the weights of the "
             "best validation loss, so training on can only lower that loss, and is taken to raise the score): the "
             "outcome must survive that move, and a stress test: the part's Effects re-decided with each such run's "
             "score (alone, then all together) raised a quarter, half, three quarters and all the way to the "
             "metric's maximum (1) must keep it, since one seed's gain widens the interval as well as moving it. "
             "A diverged run (NaN score) always blocks.")
# Table 1 of Dettmers et al. 2022 (C4 perplexity), as the decoder and real tracks read it
LLM_INT8_WORST = math.log(25.83 / 25.65)        # 0.0070 nats/token: LLM.int8()'s largest damage (125M)
ABSMAX_SMALLEST = math.log(16.55 / 15.91)       # 0.039 nats/token: plain absmax's smallest damage (1.3B)
ABSMAX_125M = math.log(87.76 / 25.65)           # 1.23 nats/token: plain absmax's damage at 125M


def chunk_effect(metric: str, a: str, test: str, bound: float, b: str, part: str, note: str, log: bool = False,
                 a_kw: dict | None = None, published: float | None = None) -> Effect:
    """An Effect over chunks (text windows, or test items) of claim "-" rows `metric` with params.quant and
    params.chunk: variant a minus variant b per chunk, paired (the same text through both), 95% interval over
    chunks. `published`: the true difference the power column is for (design, not rule: outside the fingerprint)."""
    q = lambda quant, **kw: W(**{"params.quant": quant, **{f"params.{k}": v for k, v in kw.items()}})  # noqa: E731
    return Effect(metric, q(a, **(a_kw or {})), test, bound, b=q(b), log=log, replicate="params.chunk",
                  claim_rows="-", part=part, note=note, published=published)


P4_ATOL = 1e-4                       # P4 "same outputs": max |logit difference| (history: 1e-5)
ADAPT_POINTS, ADAPT_SE = 0.10, 3.0   # "the task needs adaptation": full FT beats the zero-shot model by these


def needs_adaptation(task: str, part: str) -> tuple:
    """Preconditions (issue 14): on every rung that ran `task`, full FT beats the zero-shot model (its hand-written
    prompt) by >= 10 points and >= 3 standard errors (seeds + test items): else the frozen model already does the
    task, and a method cannot show what adaptation buys."""
    w = W(claim="*", **{"params.task": task})
    return (Check("adapt_full_minus_zeroshot", ">=", ADAPT_POINTS, w, agg="min", part=part,
                  note=f"{task} needs adaptation: full FT minus the zero-shot model >= 0.10 on every rung"),
            Check("adapt_full_minus_zeroshot_over_se", ">=", ADAPT_SE, w, agg="min", part=part,
                  note="... and >= 3 standard errors"))


def converged(task: str, methods: tuple, part: str, phase: str = "main", moves: dict | None = None, **rungs) -> tuple:
    """Preconditions (issue 14): no run of `methods` on `task` (phase, rungs: params.largest=1 / half="lower" / ...)
    was still improving at its cap; else the verdict rests on an unconverged run: inconclusive (not converged).
    moves: method -> "up" / "down", the way that method's further training moves the part's Effects (its arm is a:
    up; b: down); such a method's unconverged runs block the part only where that move could change its outcome
    (`Check.moves`, bench.claims.engine)."""
    where = {"params.task": task, "params.of_phase": phase, **{f"params.{k}": v for k, v in rungs.items()}}
    return tuple(Check("conv_still_improving", "==", 0, W(claim="*", method=m, **where),
                       agg="max", part=part, note=f"not converged: {m} runs ({phase}) still improving at the cap",
                       moves=(moves or {}).get(m, ""))
                 for m in methods)


DATE_30 = "2026-12-05"  # issue 30: the scale harness sized by design power
POWER_TARGET = 0.8      # design power a decided part needs at the published effect (reproductions.scale.design)


def designed(part: str) -> Check:
    """Precondition (issue 30): the part's design power at the published effect, from a stored run's noise, is >= 0.8
    (the `design_power` row the harness records before any run; reproductions.scale.design). Else the part is
    inconclusive: underpowered at this scale."""
    return Check("design_power", ">=", POWER_TARGET, W(**{"params.part": part}), agg="min", part=part,
                 note=f"design power >= {POWER_TARGET:g} at the published effect ('{part}')")


def MAIN(task: str, **kw) -> tuple:
    """Per-run rows of the main sweep on `task`."""
    return R(**{"params.task": task, "params.phase": "main"}, **kw)
