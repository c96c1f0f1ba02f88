"""reproductions/methods/quantizers.py: our LLM.int8() and NF4 Linears beside bitsandbytes' on the same weights and
inputs: errors of both sides (ours within 5% of bitsandbytes'), the ABBA latency ratio with
its target, and the report's table."""

from __future__ import annotations

import json

import pytest

from bench.schema import Recorder
from reproductions import methods as R
from reproductions.methods.quantizers import QUANTIZERS, quantizer_rows

pytest.importorskip("bitsandbytes")


def test_quantizer_rows_and_report(tmp_path):
    s = R.SETTINGS["smoke"]
    assert s.quant_shapes and R.TARGET_QUANT_OURS_OVER_BNB == 1.0
    assert R.SETTINGS["cpu"].quant_shapes == ((16, 4096, 4096), (512, 4096, 4096))   # the sizes
    rec = Recorder(group="methods", profile="smoke", out_dir=tmp_path)
    quantizer_rows(rec, s, 0)
    res, tim = rec.frame(), rec.frame(timing=True)
    err = res[res["metric"] == "quantized_linear_rel_err"].set_index("method")["value"]
    assert set(err.index) == {f"{side}-{k}" for side in ("ours", "bnb") for k in QUANTIZERS}
    assert 1e-4 < err["ours-llm_int8"] < 0.05 and 0.02 < err["ours-nf4"] < 0.2     # int8 / 4-bit error levels
    for k in QUANTIZERS:                     # same weights, same inputs: ours within 5% of bitsandbytes
        assert err[f"ours-{k}"] <= err[f"bnb-{k}"] * 1.05, k
    ratio = tim[tim["metric"] == "quantized_linear_latency_ours_over_bnb"]
    assert list(ratio["method"]) == list(QUANTIZERS) and (ratio["value"] > 0).all()
    params = {m: json.loads(p) for m, p in zip(ratio["method"], ratio["params"])}
    assert params["llm_int8"]["target"] == 1.0 and params["nf4"]["target"] is None
    assert params["llm_int8"]["protocol"] == "ABBA pairs" and "bnb_cpu_path" not in params["nf4"]   # measured: info
    assert json.loads(ratio[ratio["method"] == "nf4"]["info"].iloc[0])["bnb_cpu_path"]
    assert len(tim[tim["metric"] == "quantized_linear_latency_s"]) == 2 * len(QUANTIZERS)
    rec.save()
    R.report(tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "## Quantized Linears: ours beside bitsandbytes'" in text and "## linear-" not in text
    assert "| LLM.int8() (threshold 6) | 4 x 128 x 64 |" in text and "`Linear8bitLt`" in text
    assert text.count("| meets |") + text.count("| misses: ") == 1           # LLM.int8()'s target; NF4 has none
