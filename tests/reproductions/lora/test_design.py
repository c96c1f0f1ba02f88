"""reproductions/lora/design.py: L4's design power comes out both ways with the noise it is given."""

import json

from bench.schema import Recorder
from reproductions.lora import design


def _noise(items: int, a, b) -> dict:
    return {"from": "test", "items": items, "arms": {"r64": {"accuracy": a}, "r1": {"accuracy": b}}}


def test_stored_noise_cannot_resolve_the_band_at_400_items():
    d = design.design(3)                                  # the committed noise.json (a cpu-1m run)
    assert d["items"] == 400 and d["power"] < 0.8
    assert d["needed_items"] and d["needed_items"] > 400  # more items would do: the report says how many


def test_power_is_high_where_the_design_resolves_the_band():
    quiet = _noise(20_000, [0.700, 0.701, 0.699], [0.700, 0.699, 0.701])
    assert design.design(3, quiet)["power"] >= 0.8
    noisy = _noise(400, [0.70, 0.72, 0.68], [0.70, 0.68, 0.72])
    assert design.design(3, noisy)["power"] < 0.8


def test_record_writes_the_rows_the_precondition_reads():
    rec = Recorder(group="lora", profile="smoke", out_dir=None, claims=["L4"])
    design.record(rec, 3, _noise(20_000, [0.700, 0.701, 0.699], [0.700, 0.699, 0.701]))
    df = rec.frame()
    pw = df[df.metric == "design_power"]
    assert len(pw) == 1 and json.loads(pw.params.iloc[0])["part"] == "quality flat in r"
    assert {"design_needed_seeds", "design_needed_items"} <= set(df.metric)


def test_measure_noise_reads_the_stored_run():
    from pathlib import Path
    root = Path(__file__).resolve().parents[3]
    noise = design.measure_noise(root / "results" / "lora")
    assert noise["items"] == 400 and len(noise["arms"]["r1"]["accuracy"]) >= 3
