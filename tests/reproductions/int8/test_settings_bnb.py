"""reproductions/int8/settings.py and bnb.py: the one LLM.int8() threshold, the settings table --set reaches,
and the latency rows timed by bench.timing."""

import json

from bench.numerics.quant import LLM_INT8_THRESHOLD
from bench.repro import group_settings
from bench.schema import Recorder, read_results
from reproductions import int8
from reproductions.int8.bnb import latency


def test_threshold_and_settings():
    assert int8.THRESHOLD is LLM_INT8_THRESHOLD
    assert group_settings(int8) is int8.SETTINGS and set(int8.SETTINGS) == {"smoke", "cpu", "gpu"}


def test_latency_rows_are_timings_with_their_conditions(tmp_path):
    rec = Recorder(group="int8", profile="smoke", out_dir=tmp_path)
    latency(rec, [(4, 64, 32)], reps=2)
    rec.save()
    tm = read_results(tmp_path, timing=True)
    lat = tm[tm["metric"] == "latency_s"]
    assert set(lat["method"]) == {"fp32_linear", "llm_int8", "bnb_llm_int8"} and (lat["value"] > 0).all()
    assert {"threads", "load_avg_1m", "M", "K", "N", "reps"} <= set(json.loads(lat["params"].iloc[0]))
    assert "int_mm_used_on_cpu" in rec.notes
