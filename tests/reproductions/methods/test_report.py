"""reproductions/methods/report.py: the tables from stored rows (no run)."""

from __future__ import annotations

from bench.schema import Recorder
from reproductions import methods as R


def test_report_renders_tables(tmp_path):
    rec = Recorder(group="methods", profile="smoke", out_dir=tmp_path)
    common = dict(model="gpt2-tiny", scale="toy", seed=0)
    for m, step, ratio in (("full", 1.0, 1.0), ("lora", 0.7, 0.7)):
        rec.add("-", "trainable_params", 100 if m == "full" else 5, method=m, **common)
        rec.add("-", "train_step_s", step, method=m, timing=True, **common)
        rec.add("-", "train_step_ratio_vs_full", ratio, method=m, timing=True, **common)
        rec.add("-", "memory_ratio_vs_full", ratio, method=m, params={"part": "total"}, **common)
    rec.add("-", "lora_step_ours_over_peft", 0.98, method="lora", timing=True, **common,
            params={"pairs": 20, "median_of_pair_ratios": 0.99, "pair_ratio_q25": 0.95, "pair_ratio_q75": 1.02})
    rec.add("-", "lora_step_ours_over_peft_roundrobin", 1.1, method="lora", timing=True, **common)
    rec.add("-", "forward_latency_merged_over_base_paired", 1.004, method="lora_merged", timing=True, **common,
            params={"batch": 2, "seq": 16, "pair_ratio_q25": 0.99, "pair_ratio_q75": 1.01})
    for m, r in (("lora_merged", 1.01), ("lora_unmerged", 1.2)):
        rec.add("-", "forward_latency_ratio_vs_base", r, method=m, timing=True, params={"batch": 2, "seq": 16},
                **common)
    rec.save()
    R.report(tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "**0.980** (meets the target <= 1.05); ratio of medians over 20 ABBA pairs" in text
    assert "quartiles 0.95-1.02" in text and "round-robin over all methods below: 1.100" in text
    assert "| lora | 5 | 0.7 | 0.7 |" in text
    assert "| 2 x 16 |" in text and "| 1.2 | 1.01 | 1.004 | 0.99-1.01 |" in text


def test_report_without_rows(tmp_path):
    Recorder(group="methods", profile="smoke", out_dir=tmp_path).save()
    R.report(tmp_path)
    assert "No results yet." in (tmp_path / "report.md").read_text()
