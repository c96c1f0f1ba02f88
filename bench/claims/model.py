"""The registry's types: `Check`, `Effect` (a rule's machine form), `Claim`, `Track`, `Change`, and the row filters `W` / `R`.

Each Check / Effect renders one sentence (`sentence()`): the rule's prose is generated from its machine form, so the
two cannot drift apart. `describe()` is the compact form the verdict engine quotes in its reasons (unchanged, so
stored verdicts read as before).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field, replace

OPS = {"==": operator.eq, "<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}

# The one-sided stress test's constants (bench.claims.engine.stands_stressed). They are part of a rule's machine
# form (bench.prereg fingerprints them), so they live here, beside the rule types, not in the engine.
CEILING = 1.0                        # accuracy and BLEU (0-1): the most an unconverged run's score can reach
STRESS = (0.25, 0.5, 0.75, 1.0)      # shares of the way to CEILING the one-sided stress test raises such runs by
BOUNDED = ("accuracy", "bleu")       # the metrics bounded by CEILING


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

    def sentence(self, part: bool = True) -> str:
        """The check as one sentence, generated from its fields (every field that decides is said); part=False
        leaves out the part's name (a table that has a column for it)."""
        rows = f" over rows {_w(self.where)}" if self.where else ""
        src = " (wall-clock timings)" if self.source == "timings" else ""
        if self.op == "~=":
            cmp = f"is {self.target:g} to within {self.atol:g}" + (f" + {self.rtol:g} x |target|" if self.rtol else "")
        else:
            cmp = f"{OP_WORDS[self.op]} {self.target:g}"
        out = f"{_part(self.part) if part else ''}{AGG_WORDS[self.agg]} `{self.metric}`{rows}{src} {cmp}"
        if self.resolution:
            out += f"; failing by less than {self.resolution:g} is inconclusive"
        if self.missing == "paper":
            out += "; without rows: not run (needs paper scale)"
        if self.moves:
            out += (f"; one-sided: where it fails, the unconverged runs' further training can only move the part's "
                    f"effect {self.moves}, and it blocks the part only if that move (stress-tested) could change "
                    f"the outcome")
        return _cap(out + ".")


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
    history: tuple = ()         # Change records from history.toml: rules as they were before, with date and reason
    tracks: dict = field(default_factory=dict, compare=False)   # name -> Track: the same claim decided elsewhere

    def on(self, track: str) -> "Claim":
        """The claim as `track` decides it (e.g. "real": its checks, preconditions and scales; group = the track)."""
        t = self.tracks[track]
        return replace(self, checks=t.checks, preconditions=t.preconditions, scales=t.scales, group=track, tracks={})


@dataclass(frozen=True)
class Track:
    """The same claim decided on another group's rows (e.g. "real": a model somebody else pretrained)."""

    checks: tuple
    preconditions: tuple = ()
    scales: tuple[str, ...] = ("real",)


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
    published: float | None = None   # the true a - b the part's design power is for (bench.power.of_result): the
    #                                  paper's effect in the rule's units; design, not rule (left out of fingerprints)

    def __post_init__(self):
        if self.test not in ("above", "below", "within"):
            raise ValueError(f"unknown test {self.test!r}")

    def describe(self) -> str:
        arms = f"{_w(self.a)} - " + (_w(self.b) if self.b is not None else f"{self.ref:g}")
        fn = "log " if self.log else ""
        return (f"{fn}{self.metric}: {arms}{' per ' + self.by if self.by else ''} ({self.rungs}), 95% CI {self.test} "
                f"{self.bound:g}" + (f", {self.items} test items" if self.items else ""))

    def sentence(self, part: bool = True) -> str:
        """The effect as one sentence, generated from its fields (every field that decides is said); part=False
        leaves out the part's name."""
        metric = f"log `{self.metric}`" if self.log else f"`{self.metric}`"
        b = (f"{_w(self.b)}" + (f" (its metric `{self.metric_b}`)" if self.metric_b else "")) if self.b is not None \
            else f"{self.ref:g}"
        rows = f" (rows of claim {self.claim_rows!r})" if self.claim_rows else ""
        where = ""
        if self.by:
            where = {"every": f" on every {self.by}", "smallest": f" on the smallest {self.by}",
                     "largest": f" on the largest {self.by}",
                     "lower": f" on the smaller half of the {self.by} values"}[self.rungs]
        test = {"above": f"lies above {self.bound:g}", "below": f"lies below {self.bound:g}",
                "within": f"lies inside [-{self.bound:g}, {self.bound:g}]"}[self.test]
        reps = f"replicates: {self.replicate} means" if self.replicate != "seed" else "seed means"
        items = f", plus the binomial error of {self.items} test items" if self.items else ""
        missing = "; without rows: not run (needs paper scale)" if self.missing == "paper" else ""
        return _cap(f"{_part(self.part) if part else ''}{metric} of {_w(self.a)} minus {b}{rows}{where}: the 95% interval "
                    f"({reps}{items}) {test}{missing}.")


OP_WORDS = {"==": "equals", "<=": "is at most", ">=": "is at least", "<": "is below", ">": "is above"}
AGG_WORDS = {"mean": "the mean of", "min": "the smallest", "max": "the largest", "median": "the median of",
             "last": "the last", "count": "the number of rows of"}


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _part(part: str) -> str:
    return f"Part '{part}': " if part else ""


def _w(where) -> str:
    return "{" + ", ".join(f"{k}={v}" for k, v in where) + "}"


def W(**kw) -> tuple[tuple[str, object], ...]:
    """`where` filters as keyword arguments: W(model="gpt3-175b", **{"params.r": 1})."""
    return tuple(sorted(kw.items()))


def R(**kw) -> tuple[tuple[str, object], ...]:
    """`where` for per-run rows under any claim (the harnesses record them under "-" or the claim's ID)."""
    return W(claim="*", **kw)



@dataclass(frozen=True)
class Change:
    """A rule as it stood before a change: its text, the date of the change and why (an entry of history.toml).
    run: "before" / "after" the run the change relates to, where the entry says; "" where unknown.
    track: the track whose rule changed ("real", "decoder"); "" for the claim's own (toy) rule."""

    date: str
    old: str
    reason: str
    run: str = ""
    track: str = ""
