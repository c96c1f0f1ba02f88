"""bench/claims/decoder.py: the decoder track's rules (SmolLM2-135M, weights dequantized from 4-bit), and the
engine reading per-window rows as paired replicates (Effect.replicate = "params.chunk")."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from bench import prereg
from bench.claims import CLAIMS, DECODER_GROUP, TRACKS, Effect, on_track
from bench.claims.decoder import TASK
from bench.claims.engine import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, evaluate_effect, verdict


def test_the_track_decides_the_claims_the_group_measures():
    from reproductions.decoder import CLAIMS as GROUP_CLAIMS
    assert DECODER_GROUP in TRACKS
    assert set(on_track(DECODER_GROUP)) == set(GROUP_CLAIMS)
    assert set(prereg.fingerprints(DECODER_GROUP)) == set(GROUP_CLAIMS)


def test_every_rule_part_says_its_source_and_the_weights_note():
    for cid, c in on_track(DECODER_GROUP).items():
        assert c.group == DECODER_GROUP and c.scales == ("real",)
        for r in (*c.preconditions, *c.checks):
            assert "dequantized from 4-bit" in r.note, (cid, r.metric)
    # the text-window Effects state their power and false-positive rate from the stored run's window noise
    effects = [r for c in on_track(DECODER_GROUP).values() for r in (*c.preconditions, *c.checks)
               if isinstance(r, Effect)]
    windows = [r for r in effects if r.replicate == "params.chunk"]
    assert len(windows) == 5 and all("power" in r.note and "false-positive rate" in r.note for r in windows)
    # the task Effects (P2, P3, A1): seeds as replicates, power from the run's own noise, one size is no trend
    tasks = [r for r in effects if r.replicate == "seed"]
    assert len(tasks) == 3 and all(r.claim_rows == "-" and dict(r.a)["params.task"] == TASK for r in tasks)
    assert all("Power and false-positive rate" in r.note and "not a trend" in r.note for r in tasks)


def _windows(values: dict[str, np.ndarray]) -> pd.DataFrame:
    rows = [{"claim": "-", "metric": "chunk_nll", "value": float(v), "seed": -1, "model": "m", "info": "{}",
             "params": json.dumps({"quant": q, "chunk": c, **({"threshold": 6.0} if q == "llm_int8" else {})})}
            for q, vs in values.items() for c, v in enumerate(vs)]
    return pd.DataFrame(rows)


def test_windows_pair_up_so_a_shared_window_effect_cancels():
    rng = np.random.default_rng(0)
    text = rng.normal(3.5, 0.5, 64)                    # window difficulty: large, shared by both variants
    rule = CLAIMS["Q2"].on(DECODER_GROUP).checks[0]    # absmax - zero-point below log 0.99
    better = _windows({"absmax": text - 0.05 + rng.normal(0, 0.01, 64), "zeropoint": text})
    assert evaluate_effect(better, "Q2", rule).outcome == REPRODUCED     # unpaired, sd 0.5 would hide 0.05
    worse = _windows({"absmax": text + 0.3 + rng.normal(0, 0.1, 64), "zeropoint": text})
    assert evaluate_effect(worse, "Q2", rule).outcome == NOT_REPRODUCED
    same = _windows({"absmax": text + rng.normal(0, 0.2, 64), "zeropoint": text})
    assert evaluate_effect(same, "Q2", rule).outcome == INCONCLUSIVE


def test_q4_keeps_quality_needs_absmax_to_lose_first():
    rng = np.random.default_rng(1)
    text = rng.normal(3.5, 0.5, 64)
    claim = CLAIMS["Q4"].on(DECODER_GROUP)
    df = _windows({"fp32": text, "llm_int8": text + rng.normal(0, 0.001, 64), "absmax": text + 0.001})
    df = pd.concat([df, pd.DataFrame([{"claim": "Q4", "metric": "x", "value": 0.0, "seed": -1, "model": "m",
                                       "params": "{}", "info": "{}"}])], ignore_index=True)
    v = verdict(claim, df.assign(scale="real"))
    assert v.parts["keeps quality"] == INCONCLUSIVE and "precondition" in v.reasons["keeps quality"]


def _task_rows(acc: dict[str, list[float]], adapt=(0.30, 12.0), still: dict | None = None, n_test=100_000,
               claims=("P2", "P3", "A1")):
    """Per-run `accuracy` rows of the remapped task (claim "-", one per method and seed), the adaptation rows, the
    convergence flags and a row under each of `claims` (a claim without rows is 'not run yet'), as
    reproductions/decoder/tasks.py records them. n_test large: a narrow interval."""
    rows = []

    def add(metric, value, method="-", seed=-1, claim="-", **params):
        rows.append({"claim": claim, "metric": metric, "value": float(value), "seed": seed, "model": "m",
                     "method": method, "info": "{}", "scale": "real",
                     "params": json.dumps({"task": TASK, "n_test": n_test, **params}, sort_keys=True)})
    for method, values in acc.items():
        for seed, v in enumerate(values):
            add("accuracy", v, method, seed)
            add("still_improving_at_cap", (still or {}).get(method, 0), method, seed)
        add("conv_still_improving", (still or {}).get(method, 0), method, of_phase="main")
    add("adapt_full_minus_zeroshot", adapt[0])
    add("adapt_full_minus_zeroshot_over_se", adapt[1])
    for claim in claims:
        add("marker", 0.0, claim=claim)
    return pd.DataFrame(rows)


def test_task_rules_come_out_both_ways_on_synthetic_rows():
    p2, p3 = CLAIMS["P2"].on(DECODER_GROUP), CLAIMS["P3"].on(DECODER_GROUP)
    part2, part3 = p2.checks[0].part, p3.checks[0].part
    full, close, behind = [0.80, 0.81, 0.79], [0.805, 0.815, 0.795], [0.60, 0.62, 0.61]
    assert verdict(p2, _task_rows({"full": full, "prefix": close})).parts[part2] == REPRODUCED
    assert verdict(p2, _task_rows({"full": full, "prefix": behind})).parts[part2] == NOT_REPRODUCED
    assert verdict(p3, _task_rows({"full": full, "prompt": behind})).parts[part3] == REPRODUCED
    assert verdict(p3, _task_rows({"full": full, "prompt": close})).parts[part3] == NOT_REPRODUCED


def test_task_rules_need_a_task_with_room_and_converged_runs():
    p2 = CLAIMS["P2"].on(DECODER_GROUP)
    part = p2.checks[0].part
    acc = {"full": [0.80, 0.81, 0.79], "prefix": [0.80, 0.80, 0.81]}
    for adapt in ((0.05, 12.0), (0.30, 2.0)):          # < 10 points, or < 3 SE: the frozen model already does it
        v = verdict(p2, _task_rows(acc, adapt=adapt))
        assert v.parts[part] == INCONCLUSIVE and "precondition" in v.reasons[part]
    # unconverged full FT runs can only move prefix - full down: a failure far enough below the floor to survive
    # the stress test (a full-FT seed raised to 1.0) stays a failure; unconverged prefix runs (up) block it
    behind = {"full": [0.80, 0.81, 0.79], "prefix": [0.30, 0.32, 0.31]}
    assert verdict(p2, _task_rows(behind, still={"full": 1})).parts[part] == NOT_REPRODUCED
    assert verdict(p2, _task_rows(behind, still={"prefix": 1})).parts[part] == INCONCLUSIVE


def test_a1_without_adapter_runs_is_not_decided():
    a1 = CLAIMS["A1"].on(DECODER_GROUP)
    # the cpu profile runs no adapters, so the harness records no A1 row: not run
    assert verdict(a1, _task_rows({"full": [0.80, 0.81, 0.79]}, claims=())).status == "not run yet"
    v = verdict(a1, _task_rows({"full": [0.80, 0.81, 0.79], "lora": [0.8, 0.8, 0.8]}))
    assert v.parts[a1.checks[0].part] == INCONCLUSIVE
    ok = verdict(a1, _task_rows({"full": [0.80, 0.81, 0.79], "adapters": [0.80, 0.81, 0.79]}, n_test=10**9))
    assert ok.parts[a1.checks[0].part] == REPRODUCED


def test_real_q4_reads_the_same_chunk_replicates():
    """The real track's Q4 (MiniLM; issue 31) decides on per-chunk rows of test items as the decoder's on windows:
    parity within Table 1's margin, quality kept only once absmax has lost something, and both ways."""
    from bench.claims import REAL_GROUP
    claim = CLAIMS["Q4"].on(REAL_GROUP)
    rng = np.random.default_rng(2)
    items = rng.normal(0.45, 0.15, 50)                 # chunk difficulty, shared by every variant

    def df(absmax_damage, int8_damage):
        nll = _windows({"fp32": items, "absmax": items + absmax_damage + rng.normal(0, 0.01, 50),
                        "llm_int8": items + int8_damage + rng.normal(0, 0.001, 50)})
        kl = _windows({"absmax": np.full(50, 0.05) + rng.normal(0, 0.002, 50),
                       "llm_int8": np.full(50, 0.001) + rng.normal(0, 1e-4, 50),
                       "bnb_llm_int8": np.full(50, 0.001) + rng.normal(0, 1e-4, 50)}).assign(metric="chunk_kl")
        extra = pd.DataFrame([{"claim": "Q4", "metric": "x", "value": 0.0, "seed": -1, "model": "m", "params": "{}",
                               "info": "{}"}])
        return pd.concat([nll, kl, extra], ignore_index=True).assign(scale="real")
    v = verdict(claim, df(0.1, 0.0))
    assert v.parts == {"bitsandbytes parity": REPRODUCED, "keeps quality": REPRODUCED,
                       "decomposition keeps what absmax loses": REPRODUCED}
    assert verdict(claim, df(0.1, 0.05)).parts["keeps quality"] == NOT_REPRODUCED
    quiet = verdict(claim, df(0.01, 0.0))                # absmax barely hurts: nothing to keep
    assert quiet.parts["keeps quality"] == INCONCLUSIVE and quiet.parts["bitsandbytes parity"] == REPRODUCED
