"""The verdict engine: a claim's rule applied to a group's stored rows.

`verdict(claim, df, meta)` applies the registry's preconditions, Checks and Effects to a group's stored results;
nothing here knows any claim's numbers. Four outcomes (issue 13): reproduced / not reproduced / inconclusive (a
precondition failed or was not measured, or the effect is below what the run resolves) / not run. Each part of a
claim gets a sub-verdict; the claim's outcome is the worst decided part (not reproduced > inconclusive >
reproduced). Effects carry 95% intervals (`bench.stats`). A failed one-sided precondition (`Check.moves`) is waived
only where the part's outcome survives the stress test (`stands_stressed`).
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import pandas as pd

from bench import prereg, stats

from .model import BOUNDED, CEILING, OPS, STRESS, Check, Claim, Effect  # noqa: F401  (the stress test's constants)

REPRODUCED = stats.REPRODUCED
NOT_REPRODUCED = stats.NOT_REPRODUCED
INCONCLUSIVE = stats.INCONCLUSIVE
NEEDS_PAPER = "not run (needs paper scale)"
NOT_RUN = "not run yet"
NO_RULE = "no rule yet"
NOT_MEASURED = "not measured yet"


@dataclass
class CheckResult:
    check: Check | Effect
    measured: float       # NaN when no rows matched
    n_rows: int
    passed: bool | None   # None when no rows matched
    outcome: str = ""     # REPRODUCED / NOT_REPRODUCED / INCONCLUSIVE / NOT_MEASURED / NEEDS_PAPER
    text: str = ""        # the measured value, with its interval for an Effect
    groups: list = field(default_factory=list)   # an Effect's intervals: (outcome, lo, hi) per group picked
    waived: bool = False  # a failed one-sided precondition that could not change its part's outcome (Check.moves)
    noise: list = field(default_factory=list)    # an Effect's measured noise per group picked (bench.power.Noise)


@dataclass
class Verdict:
    claim: Claim
    status: str
    measured: str
    checks: list[CheckResult]
    scale_run: str
    parts: dict[str, str] = field(default_factory=dict)     # part -> outcome
    reasons: dict[str, str] = field(default_factory=dict)   # part -> why (failed precondition, missing metric)
    preconditions: list[CheckResult] = field(default_factory=list)
    effect: str = ""      # the headline effect with its interval
    prereg: prereg.PreReg | None = None   # was the rule fixed before the run? (bench.prereg; None: no run)
    powers: dict | None = None   # design power per decided Effect (bench.claims.writers.part_powers: computed once)


@functools.lru_cache(maxsize=1 << 16)
def _parse(s: str) -> MappingProxyType:
    """One row's JSON params, parsed once per distinct string (a report or a calibration test evaluates the same
    rows many times); read-only, since the parsed mapping is shared."""
    return MappingProxyType(json.loads(s))


_EMPTY = MappingProxyType({})


def _parsed(values) -> list:
    """Each value parsed as JSON params, in order: a mapping per value ({} where empty or not a string)."""
    return [_parse(s) if isinstance(s, str) and s else _EMPTY for s in values]


def _param_list(rows: pd.DataFrame, col: str = "params") -> list:
    return _parsed(rows[col].tolist())


def _params(rows: pd.DataFrame, col: str = "params") -> pd.Series:
    return pd.Series(_param_list(rows, col), index=rows.index, dtype=object)


def _rows(df: pd.DataFrame, claim_id: str, metric: str, where, source: str = "results") -> pd.DataFrame:
    """Rows of `claim_id` (or where's "claim") and `metric` in `source`, filtered by `where`."""
    keys = dict(where)
    want_claim = keys.pop("claim", claim_id)
    # numpy masks and plain Python over the few rows left: pandas' per-call overhead dominated here (a report, and
    # the calibration test's thousands of simulated reruns, call this for every rule)
    mask = df["metric"].to_numpy() == metric
    mask &= (df["source"].to_numpy() == source) if "source" in df.columns else source == "results"
    if want_claim != "*":
        mask &= df["claim"].to_numpy() == want_claim
    idx = np.flatnonzero(mask)
    if keys and idx.size:
        params = _parsed(df["params"].to_numpy()[idx]) if any(k.startswith("params.") for k in keys) else None
        keep = np.ones(idx.size, dtype=bool)
        for key, want in keys.items():
            got = ([p.get(key[len("params."):]) for p in params] if key.startswith("params.")
                   else df[key].iloc[idx].tolist())
            keep &= np.fromiter((_same(g, want) for g in got), dtype=bool, count=idx.size)
        idx = idx[keep]
    return df.iloc[idx]


def _select(df: pd.DataFrame, claim_id: str, check: Check) -> pd.DataFrame:
    return _rows(df, claim_id, check.metric, check.where, check.source)


def _same(got, want) -> bool:
    if isinstance(want, (int, float)) and not isinstance(want, bool):
        try:
            return float(got) == float(want)
        except (TypeError, ValueError):
            return False
    return str(got) == str(want)


def _reduce(values: pd.Series, agg: str) -> float:
    if agg == "count":
        return float(len(values))
    if values.empty:
        return math.nan
    if agg == "last":
        return float(values.iloc[-1])
    return float(getattr(values, agg)())


def _fmt(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if float(x).is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:.4g}"


def _missing(check) -> str:
    return NEEDS_PAPER if check.missing == "paper" else NOT_MEASURED


def evaluate_check(df: pd.DataFrame, claim_id: str, check: Check) -> CheckResult:
    if isinstance(check, Effect):
        return evaluate_effect(df, claim_id, check)
    rows = _select(df, claim_id, check)
    if rows.empty and check.agg != "count":
        return CheckResult(check, math.nan, 0, None, _missing(check), f"{check.metric}: {_missing(check)}")
    value = _reduce(rows["value"], check.agg)
    if math.isnan(value):
        passed = False  # a diverged or undefined measurement fails its check
    elif check.op == "~=":
        passed = abs(value - check.target) <= check.atol + check.rtol * abs(check.target)
    else:
        passed = bool(OPS[check.op](value, check.target))
    outcome = REPRODUCED if passed else NOT_REPRODUCED
    if not passed and check.op != "~=" and not math.isnan(value) and abs(value - check.target) <= check.resolution:
        outcome = INCONCLUSIVE  # fails by less than the run can resolve
    return CheckResult(check, value, len(rows), passed, outcome, f"{check.metric}={_fmt(value)}")


def _per_seed(rows: pd.DataFrame, log: bool, replicate: str = "seed") -> np.ndarray:
    """One mean per replicate (a column, or "params.<key>": e.g. params.chunk, one text window per replicate),
    in the replicates' sorted order, so two arms with the same replicates pair up."""
    vals = rows["value"].astype(float)
    vals = np.log(vals.where(vals > 0)) if log else vals
    keys = _key(rows, replicate).astype(str)
    if keys.is_unique:                   # one row per replicate (the usual case): its mean is its value, exactly
        return vals.to_numpy()[np.argsort(keys.to_numpy(), kind="stable")]
    return vals.groupby(keys).mean().sort_index().to_numpy()


def _fixed(rows: pd.DataFrame, replicate: str) -> bool:
    """An arm without randomness: every row recorded seed -1 (e.g. the zero-shot model); no seed variance."""
    return replicate == "seed" and bool((pd.to_numeric(rows["seed"], errors="coerce") == -1).all())


def _key(rows: pd.DataFrame, by: str) -> pd.Series:
    return _params(rows).map(lambda p: p.get(by[7:])) if by.startswith("params.") else rows[by]


def _n_items(rows: pd.DataFrame, default: int) -> int:
    for col in ("info", "params"):
        got = {p.get("n_test") for p in _param_list(rows, col)} - {None}
        if len(got) == 1:
            return int(got.pop())
    return default


def _rung_order(rows: pd.DataFrame, by: str) -> list:
    """Groups from small to large: by params.rung_params where recorded, else by the key's own value."""
    key = _key(rows, by)
    if key.nunique(dropna=False) == 1 and key.notna().all():    # one group: nothing to order
        return key.iloc[:1].tolist()
    size = _params(rows).map(lambda p: p.get("rung_params"))
    order = size if size.notna().all() else key
    return list(pd.Series(order.to_numpy(), index=key.to_numpy()).groupby(level=0).max().sort_values().index)


def _pick(groups: list, rungs: str) -> list:
    return {"every": groups, "smallest": groups[:1], "largest": groups[-1:],
            "lower": groups[:max(1, len(groups) // 2)]}[rungs]


def evaluate_effect(df: pd.DataFrame, claim_id: str, eff: Effect) -> CheckResult:
    """One interval per group of `by` (or one overall); outcome: the worst over the groups picked."""
    rows_of = eff.claim_rows or claim_id      # per-run rows are recorded under claim "-"
    a = _rows(df, rows_of, eff.metric, eff.a)
    b = None if eff.b is None else _rows(df, rows_of, eff.metric_b or eff.metric, eff.b)
    if a.empty or (b is not None and b.empty):
        return CheckResult(eff, math.nan, 0, None, _missing(eff), f"{eff.metric}: {_missing(eff)}")
    groups = _pick(_rung_order(a, eff.by), eff.rungs) if eff.by else [None]
    outcomes, texts, est, sides, noise = [], [], math.nan, [], []
    for g in groups:
        ag = a if g is None else a[_key(a, eff.by) == g]
        bg = None if b is None else (b if g is None or eff.by not in b.columns and not eff.by.startswith("params.")
                                     else b[_key(b, eff.by) == g])
        if bg is not None and bg.empty:
            outcomes.append(NOT_MEASURED)
            texts.append(f"{g}: no comparison rows")
            continue
        va, vb = _per_seed(ag, eff.log, eff.replicate), None if bg is None else _per_seed(bg, eff.log, eff.replicate)
        a_fixed, b_fixed = _fixed(ag, eff.replicate), bg is not None and _fixed(bg, eff.replicate)
        iv = stats.diff_interval(va, vb, _n_items(ag, eff.items), ref=eff.ref, a_fixed=a_fixed, b_fixed=b_fixed)
        noise.append(_noise(va, vb, _n_items(ag, eff.items), eff.ref, a_fixed, b_fixed))
        outcomes.append(stats.TESTS[eff.test](iv, eff.bound))
        sides.append((outcomes[-1], iv.lo, iv.hi))
        texts.append(("" if g is None else f"{g}: ") + iv.text())
        est = iv.est if math.isnan(est) or outcomes[-1] != REPRODUCED else est
    outcome = _worst(outcomes)
    return CheckResult(eff, est, len(a) + (0 if b is None else len(b)), outcome == REPRODUCED, outcome,
                       f"{eff.metric} {'log ' if eff.log else ''}diff " + "; ".join(texts), sides, noise=noise)


def _noise(va: np.ndarray, vb: np.ndarray | None, items: int, ref: float, a_fixed: bool, b_fixed: bool):
    """The noise of one group's rows as a rerun would meet it (bench.power.Noise): per-arm seed sd (an arm of one
    run borrows the other's, as the interval does), seeds per arm, test items, arm b's mean, and the sd of the
    per-replicate differences where the interval pairs the arms (equal counts > 1). None: NaN values."""
    from bench.power import Noise
    if vb is None:                       # one arm against a constant: nothing random on b's side
        vb, b_fixed = np.asarray([ref], float), True
    vb = np.asarray(vb, float)
    if np.isnan(va).any() or np.isnan(vb).any() or not va.size:
        return None
    sd = [0.0 if f or v.size < 2 else float(v.std(ddof=1)) for v, f in ((va, a_fixed), (vb, b_fixed))]
    sd_a = sd[0] if va.size > 1 or a_fixed else sd[1]
    sd_b = sd[1] if vb.size > 1 or b_fixed else sd[0]
    base = float(vb.mean())
    items = items if 0 <= base <= 1 else 0            # binomial error only for a proportion
    sd_pair = float((va - vb).std(ddof=1)) if va.size == vb.size > 1 and not b_fixed else None
    return Noise(sd_a, sd_b, int(va.size), int(vb.size), items, base, fixed_b=b_fixed, sd_pair=sd_pair)


def evaluate(df: pd.DataFrame, claim_id: str, check) -> CheckResult:
    return evaluate_effect(df, claim_id, check) if isinstance(check, Effect) else evaluate_check(df, claim_id, check)


def _worst(outcomes: list[str]) -> str:
    decided = [o for o in outcomes if o != NEEDS_PAPER]
    if not decided:
        return NEEDS_PAPER
    for o in (NOT_REPRODUCED, INCONCLUSIVE, NOT_MEASURED):
        if o in decided:
            return INCONCLUSIVE if o == NOT_MEASURED else o
    return REPRODUCED


def _precondition_reason(r: CheckResult) -> str:
    what = r.check.note or r.check.describe()
    if r.outcome in (NOT_MEASURED, NEEDS_PAPER):
        return f"precondition not measured yet: {r.check.metric} ({what})"
    if r.check.metric == DESIGN_POWER:     # issue 30: the design, not the run, decides that this part cannot tell
        return f"underpowered at this scale: {what} [{r.text}] (the seeds / items it would need: design_needed_* rows)"
    word = "failed" if r.outcome == NOT_REPRODUCED else "not established"
    return f"precondition {word}: {what} [{r.text}]"


def stands(r: CheckResult, moves: str) -> bool:
    """Whether an Effect's outcome holds however far its difference (a - b) shifts the way `moves` says ("up" /
    "down"; the whole interval shifts: that one seed's gain also widens it is `stands_stressed`'s part): a pass of
    'above' moving up, a failure of 'above' (interval below the floor) moving down, and the mirror cases of
    'below'; 'within' only where a group's interval lies outside the band on the side it moves to.
    Anything else (a plain Check, an inconclusive outcome, a passing equivalence) could change: False."""
    if not isinstance(r.check, Effect) or moves not in ("up", "down") or r.outcome not in (REPRODUCED, NOT_REPRODUCED):
        return False
    if not r.groups or any(math.isnan(lo) or math.isnan(hi) for _, lo, hi in r.groups):
        return False      # a NaN score (a diverged run) fails 'above' / 'below' without saying which way it moved
    up, test, bound = moves == "up", r.check.test, r.check.bound
    if test == "within":
        return r.outcome == NOT_REPRODUCED and any(
            o == NOT_REPRODUCED and (lo > bound if up else hi < -bound) for o, lo, hi in r.groups)
    return (r.outcome == REPRODUCED) == (up == (test == "above"))


DESIGN_POWER = "design_power"         # the metric of a design-power precondition (bench.claims.designed)


def _unconverged_rows(df: pd.DataFrame, claim_id: str, eff: Effect, pre: Check) -> list:
    """Index of the rows of `eff`'s arm that `pre` is about (moves up: arm a, down: arm b; `pre`'s method) whose run
    recorded still_improving_at_cap = 1 (same claim, model, method, seed and params as the score row)."""
    arm = eff.a if pre.moves == "up" else eff.b
    rows = _rows(df, eff.claim_rows or claim_id, eff.metric, arm)
    method = dict(pre.where).get("method")
    rows = rows[rows["method"] == method] if method else rows
    flags = df[(df["metric"] == "still_improving_at_cap") & (df["value"] > 0)]
    cols = ["claim", "model", "method", "seed", "params"]
    stuck = set(map(tuple, flags[cols].astype(str).values))
    return [i for i, key in zip(rows.index, map(tuple, rows[cols].astype(str).values)) if key in stuck]


def stands_stressed(df: pd.DataFrame, claim_id: str, r: CheckResult, pre: Check) -> bool:
    """The one-sided test: `stands` (the outcome survives a shift), and the Effect re-decided with the unconverged
    runs' scores raised (each alone, then all together) by every share of STRESS of the way to CEILING gives the
    same outcome: one seed's gain widens the interval as well as moving it (t with 2 degrees of freedom is 4.3)."""
    if not stands(r, pre.moves) or r.check.metric not in BOUNDED or r.check.log:
        return False
    idx = _unconverged_rows(df, claim_id, r.check, pre)
    raised, room = df.copy(), (CEILING - df.loc[idx, "value"]).clip(lower=0)
    for sub in [[i] for i in idx] + ([idx] if len(idx) > 1 else []):
        for share in STRESS:
            raised["value"] = df["value"]
            raised.loc[sub, "value"] += share * room[sub]
            if evaluate_effect(raised, claim_id, r.check).outcome != r.outcome:
                return False
    return True


def _decide_parts(claim: Claim, results: list[CheckResult], pres: list[CheckResult], df: pd.DataFrame):
    parts: dict[str, str] = {}
    reasons: dict[str, str] = {}
    for name in dict.fromkeys(r.check.part for r in results):
        blocked = [p for p in pres if p.outcome != REPRODUCED and p.check.part in ("", name)]
        mine = [r for r in results if r.check.part == name]
        one_sided = [p for p in blocked if p.outcome == NOT_REPRODUCED and getattr(p.check, "moves", "")
                     and all(stands_stressed(df, claim.id, r, p.check) for r in mine)]
        blocked = [p for p in blocked if not any(p is q for q in one_sided)]
        if blocked:
            parts[name], reasons[name] = INCONCLUSIVE, "; ".join(_precondition_reason(p) for p in blocked)
            continue
        for p in one_sided:
            p.waived = p.waived or p.check.part == name     # a precondition of every part ("") may block another
        if one_sided:
            reasons[name] = "one-sided: " + "; ".join(
                f"{p.check.note or p.check.describe()} [{p.text}], but their further training can only move the "
                f"effect {p.check.moves}, which keeps this outcome (stress-tested up to the metric's maximum)"
                for p in one_sided)
        parts[name] = _worst([r.outcome for r in mine])
        unsure = [r for r in mine if r.outcome in (INCONCLUSIVE, NOT_MEASURED)]
        if parts[name] == INCONCLUSIVE and unsure:
            reasons[name] = "; ".join(
                f"{r.check.metric}: not measured yet" if r.outcome == NOT_MEASURED else
                f"{r.check.metric}: below what the run resolves [{r.text}]" for r in unsure)
    return parts, reasons


def verdict(claim: Claim, df: pd.DataFrame, meta: dict | None = None) -> Verdict:
    mine = df[df["claim"] == claim.id]
    profile = (meta or {}).get("profile", "")
    scale_run = ", ".join(sorted(set(mine["scale"]))) + (f" ({profile} profile)" if profile and not mine.empty else "")
    if mine.empty:
        status = NEEDS_PAPER if claim.scales == ("paper",) else NOT_RUN
        return Verdict(claim, status, "", [], scale_run or "-")
    if not claim.checks:
        return Verdict(claim, NO_RULE, f"{len(mine)} rows recorded", [], scale_run)
    reg = prereg.status(claim, meta)
    pres = [evaluate(df, claim.id, c) for c in claim.preconditions]
    results = [evaluate(df, claim.id, c) for c in claim.checks]
    parts, reasons = _decide_parts(claim, results, pres, df)
    measured = "; ".join(r.text for r in results)
    effects = [r.text for r in results if isinstance(r.check, Effect)]
    return Verdict(claim, _worst(list(parts.values())), measured, results, scale_run, parts, reasons, pres,
                   effects[0] if effects else "", reg)
