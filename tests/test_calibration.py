"""Calibration (issues 13 and 31): every Effect rule of the registry -- the toy checks, the real track's checks
and the Effect preconditions -- fed synthetic rows through the engine (bench.report.evaluate_effect):
- with zero true effect (for "within" rules: an effect at the band's edge) says "reproduced" at most 5% of the time;
- at the effect its power is computed for (`bench.power.effect_for`: the published effect, or no difference for
  "matches" and equivalence rules) says "reproduced" as often as the README's power column predicts
  (`bench.power.design_power` on the same noise), within Monte Carlo error: so that column can be trusted, and a
  rule that cannot come out both ways is seen as such there (and reported "underpowered").
Noise is MEASURED: each rule's per-arm seed spread, seed counts, test items and arm b's level are read from the
committed results of the group that decides it (`CheckResult.noise`, the worst group picked). A rule whose rows are
not in results/ (a part the cpu profile does not run) takes the assumed level below, and its test id says so.
"""

import json
import math

import numpy as np
import pandas as pd
import pytest

from bench.claims import CLAIMS, Effect, on_track
from bench.power import Noise, design_power, effect_for, fits, simulate
from bench.report import REPRODUCED, evaluate_effect, group_verdicts

TRIALS = 200
ASSUMED_SD = {"accuracy": 0.005, "l4_test_accuracy": 0.005, "bleu": 0.03}   # where no stored rows measure it


def _assumed(eff: Effect) -> Noise:
    items = eff.items if eff.metric in ASSUMED_SD and eff.metric != "bleu" else 0
    sd = ASSUMED_SD.get(eff.metric, 0.02)
    return Noise(sd, sd, 3, 3, items, 0.6 if items else 0.5)


def _measured() -> dict:
    """{(group, claim, kind, index): Noise} from the committed results of every group that decides Effects."""
    out = {}
    groups = {c.group for c in CLAIMS.values()} | {t for c in CLAIMS.values() for t in c.tracks}
    for g in sorted(groups):
        try:
            verdicts = group_verdicts(g, timings=False)
        except Exception:          # noqa: BLE001 -- no results for this group in this checkout
            continue
        for v in verdicts:
            for kind, rs in (("check", v.checks), ("precondition", v.preconditions)):
                for k, r in enumerate(rs):
                    if isinstance(r.check, Effect) and r.noise and all(n is not None for n in r.noise):
                        out[(g, v.claim.id, kind, k)] = min(r.noise, key=lambda n: -(n.sd_a + n.sd_b))
    return out


MEASURED = _measured()


def rule_kind(eff: Effect, nz: Noise) -> tuple:
    """What decides how a rule's interval is built and tested: its test, one arm or two (fixed or random b),
    paired or not, proportions or not, log or not, what its replicates are, and whether a published effect sets
    its power. Rules of one kind go through the same code paths of the engine and of bench.power."""
    return (eff.test, eff.b is None, nz.fixed_b, nz.paired, bool(nz.items), eff.log, eff.replicate,
            effect_for(eff) is None, nz.n_a == 1 or nz.n_b == 1)


def _cases():
    """Every Effect of the registry. One rule of each kind (`rule_kind`; the one with the fewest replicates,
    the cheapest to feed through the engine) runs in the unit suite; the others of its kind are marked
    `integration` (CI's serial regress step runs them), which keeps the unit suite inside its 5-minute budget
    while every rule is still calibrated on every CI run."""
    found = []
    for c in CLAIMS.values():
        for claim, g in [(c, c.group)] + [(c.on(t), t) for t in c.tracks]:
            for kind, rs in (("check", claim.checks), ("precondition", claim.preconditions)):
                for k, e in enumerate(rs):
                    if isinstance(e, Effect):
                        nz = MEASURED.get((g, c.id, kind, k))
                        src = "measured" if nz is not None else "assumed"
                        found.append((c.id, e, nz or _assumed(e), f"{g}-{c.id}-{kind}{k}-{e.part or e.metric}-{src}"))
    cheapest = {}                      # kind -> (replicates, index) of its cheapest rule
    for i, (_, e, nz, _) in enumerate(found):
        key = rule_kind(e, nz)
        cheapest[key] = min(cheapest.get(key, (math.inf, i)), (nz.n_a + nz.n_b, i))
    unit = {i for _, i in cheapest.values()}
    return [pytest.param(cid, e, nz, id=name, marks=[] if i in unit else [pytest.mark.integration])
            for i, (cid, e, nz, name) in enumerate(found)]


CASES = _cases()


def rows(cid, eff, arm, values, reps):
    out = []
    for rep, v in zip(reps, values):
        params, r = {}, {"claim": eff.claim_rows or cid, "metric": eff.metric_b if arm == "b" and eff.metric_b else eff.metric,
                         "model": "m", "seed": rep, "method": "-", "info": "", "scale": "toy"}
        for k, want in (eff.a if arm == "a" else eff.b):
            if k.startswith("params."):
                params[k[7:]] = want
            elif k != "claim":
                r[k] = want
        if eff.by.startswith("params."):
            params[eff.by[7:]] = 64
        if eff.replicate.startswith("params."):    # e.g. params.chunk: one text window per replicate
            params[eff.replicate[7:]], r["seed"] = rep, 0
        elif eff.replicate != "seed":
            r[eff.replicate], r["seed"] = f"rung{rep}", 0
        r["params"] = json.dumps(params)
        r["value"] = float(np.exp(v) if eff.log else v)
        out.append(r)
    return out


def rate(cid, eff, nz: Noise, true_effect, rng) -> float:
    """Share of TRIALS synthetic reruns (arms drawn as `bench.power.simulate` describes: a fixed test set per arm,
    seed noise per run; paired arms share a draw per replicate and differ by `sd_pair`) that the engine decides
    "reproduced"."""
    base, hits = nz.base, 0
    reps_a, reps_b = tuple(range(nz.n_a)), tuple(range(nz.n_b))
    for _ in range(TRIALS):
        ref = eff.ref if eff.b is None else base
        pa = ref + true_effect
        off = [rng.binomial(nz.items, min(max(p, 0), 1)) / nz.items - min(max(p, 0), 1) if nz.items else 0.0
               for p in (pa, base)]
        common = rng.normal(0, nz.sd_b, nz.n_b) if nz.paired and eff.b is not None else None
        a = pa + off[0] + (rng.normal(0, nz.sd_a, nz.n_a) if common is None else
                           common + rng.normal(0, nz.sd_pair, nz.n_a))
        data = rows(cid, eff, "a", a, reps_a)
        if eff.b is not None:
            b = base + off[1] + (np.zeros(nz.n_b) if nz.fixed_b else common if common is not None else
                                 rng.normal(0, nz.sd_b, nz.n_b))
            data += rows(cid, eff, "b", b, (-1,) * nz.n_b if nz.fixed_b else reps_b)
        df = pd.DataFrame(data)
        hits += evaluate_effect(df, cid, eff).outcome == REPRODUCED
    return hits / TRIALS


def null_effect(eff: Effect) -> float:
    """No effect (0), or the rule's own bound where 0 would pass it: a band's edge, a non-inferiority margin
    ("above" a negative bound, "below" a positive one)."""
    if eff.test == "within" or (eff.test == "above" and eff.bound < 0) or (eff.test == "below" and eff.bound > 0):
        return eff.bound
    return 0.0


def power_only(eff: Effect, nz: Noise, effect: float, n_sim: int = 1000, seed: int = 3) -> float:
    return float(np.mean(simulate(eff, nz, effect, n_sim, np.random.default_rng(seed)) == REPRODUCED))


def test_power_is_design_powers_first_draw():
    cid, eff, nz = next(p.values for p in CASES if effect_for(p.values[1]) is not None)
    effect = effect_for(eff)
    assert power_only(eff, nz, effect, n_sim=200) == design_power(eff, nz, n_sim=200, seed=3, effect=effect).power


@pytest.mark.parametrize("cid,eff,nz", CASES)
def test_false_positive_rate_at_most_5_percent(cid, eff, nz):
    rng = np.random.default_rng(13)
    assert rate(cid, eff, nz, null_effect(eff), rng) <= 0.05


@pytest.mark.parametrize("cid,eff,nz", CASES)
def test_power_column_predicts_how_often_the_engine_decides(cid, eff, nz):
    """The engine, fed rows at the effect the power is for, says "reproduced" as often as design_power says."""
    effect = effect_for(eff)
    if effect is None:
        pytest.skip("no published effect size: the power column shows the design precondition (its own simulation) "
                    "or n/a")
    if not fits(eff, nz, effect):        # the column says "no room": there is no rate to compare
        res = design_power(eff, nz, n_sim=10, effect=effect)
        assert res.power == 0.0 and not res.room
        return
    got = rate(cid, eff, nz, effect, np.random.default_rng(7))
    # design_power(eff, nz, n_sim=1000, seed=3, effect=effect).power, without the false-positive runs it also makes
    # (its power is the first draw of that seed's stream: test_power_is_design_powers_first_draw)
    want = power_only(eff, nz, effect)
    tol = 3.5 * math.sqrt(max(want * (1 - want), 0.02) / TRIALS) + 0.03
    assert abs(got - want) <= tol, (got, want, nz)


def test_most_rules_are_calibrated_on_measured_noise():
    measured = sum(1 for p in CASES if p.id.endswith("-measured"))
    assert measured >= len(CASES) // 2, [p.id for p in CASES]
