"""bench/claims/decoder.py: the decoder track's rules (SmolLM2-135M, weights dequantized from 4-bit), and the
engine reading per-window rows as paired replicates (Effect.replicate = "params.chunk")."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from bench import prereg
from bench.claims import CLAIMS, DECODER_GROUP, TRACKS, Effect, on_track
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
    # the Effects state their power and false-positive rate from the stored run's window noise
    effects = [r for c in on_track(DECODER_GROUP).values() for r in (*c.preconditions, *c.checks)
               if isinstance(r, Effect)]
    assert len(effects) == 5 and all("power" in r.note and "false-positive rate" in r.note for r in effects)
    assert all(r.replicate == "params.chunk" and r.claim_rows == "-" for r in effects)


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
