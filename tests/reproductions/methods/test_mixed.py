"""reproductions/methods/mixed.py: the mixed-task batch equals each row alone, and its throughput ratio row
(target TARGET_MIXED_THROUGHPUT = 0.95, ABBA pairs) is recorded and reported."""

from __future__ import annotations

from bench.schema import Recorder
from reproductions import methods as R
from reproductions.methods.mixed import mixed_serving
from reproductions.methods.models import build


def test_mixed_serving_rows_and_report(tmp_path):
    spec = R.ModelSpec("gpt2-tiny", 32, 2, 2, 256)
    s = R.SETTINGS["smoke"]
    assert s.mixed_tasks >= 2 and R.TARGET_MIXED_THROUGHPUT == 0.95
    rec = Recorder(group="methods", profile="smoke", out_dir=tmp_path)
    common = dict(model=spec.name, seed=0, data="random-tokens")
    mixed_serving(rec, build(spec, s.seq, 0).eval(), spec, s, 0, "cpu", common)
    res, tim = rec.frame(), rec.frame(timing=True)
    diffs = res[res["metric"] == "mixed_batch_vs_single_rows_max_abs_diff"]
    assert set(diffs["method"]) == {"lora", "prompt"} and (diffs["value"] <= 1e-5).all()
    ratio = tim[tim["metric"] == "mixed_batch_throughput_over_single_task"]
    assert set(ratio["method"]) == {"lora", "prompt"} and (ratio["value"] > 0).all()
    assert all('"protocol":"ABBA pairs"' in p and '"target":0.95' in p for p in ratio["params"])
    rec.save()
    R.report(tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "Multi-task serving" in text and "| lora | 4 | 2 x 16 | stacked |" in text
