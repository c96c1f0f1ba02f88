"""reproductions/methods.py (the performance benchmark): contract, memory accounting, report; no timing runs."""

from __future__ import annotations

import torch

from bench.methods import apply, make_config, trainable_parameters
from bench.schema import Recorder
from reproductions import methods as R
from tests.methods.helpers import make


def test_contract():
    assert R.GROUP == "methods" and R.CLAIMS == () and R.REGRESS == []
    assert callable(R.run) and callable(R.report)
    assert set(R.SETTINGS) == {"smoke", "cpu", "gpu"}
    cpu = R.SETTINGS["cpu"]
    assert (cpu.batch, cpu.seq) == (8, 128) and R.METHOD_KWARGS["lora"]["r"] == 8
    assert {m.name for m in cpu.models} == {"gpt2-10m", "gpt2-small"}


def test_sharing_copy_shares_weights_not_flags():
    base = make("gpt2")
    a, b = R._sharing_copy(base), R._sharing_copy(base)
    apply(a, make_config("lora", r=2))
    pa, pb = a.transformer.wte.weight, b.transformer.wte.weight
    assert pa.data_ptr() == pb.data_ptr() == base.transformer.wte.weight.data_ptr()
    assert not pa.requires_grad and pb.requires_grad
    assert b.lm_head.weight is pb                                    # tied weights stay tied


def test_tensor_accounting():
    ids = torch.randint(1, 100, (2, 8))
    acct = {}
    for name, kw in (("full", {}), ("lora", dict(r=2))):
        model = apply(make("gpt2"), make_config(name, **kw))
        opt = R._optimizer(model)
        R._step(model, opt, ids)
        acct[name] = (R.tensor_accounting(model, opt, ids), trainable_parameters(model))
    (full, (_, total_full)), (lora, (n_lora, total_lora)) = acct["full"], acct["lora"]
    assert full["weights"] == full["grads"] == 4 * total_full and full["states"] == 2 * full["grads"]
    assert lora["weights"] == 4 * total_lora and lora["grads"] == 4 * n_lora and lora["states"] == 8 * n_lora
    assert 0 < lora["activations"] and full["activations"] > 0
    assert full["total"] == sum(v for k, v in full.items() if k != "total")


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


def test_abba_pairs_alternate_and_their_stats():
    calls = []
    ta, tb = R._paired(lambda: calls.append("a"), lambda: calls.append("b"), 4)
    assert "".join(calls) == "abbaabba" and len(ta) == len(tb) == 4
    st = R._pair_stats([2.0, 2.2, 1.8, 2.0], [1.0, 1.0, 1.0, 2.0])
    assert st["ratio"] == 2.0 / 1.0 and st["pairs"] == 4 and st["pair_ratio_q25"] <= st["median_of_pair_ratios"]
    assert st["median_of_pair_ratios"] == 1.9


def test_mixed_serving_rows_and_report(tmp_path):
    """Part 4: the mixed-task batch equals each row alone, and its throughput ratio row (target 0.95) is reported."""
    spec = R.ModelSpec("gpt2-tiny", 32, 2, 2, 256)
    s = R.SETTINGS["smoke"]
    assert s.mixed_tasks >= 2 and R.TARGET_MIXED_THROUGHPUT == 0.95
    rec = Recorder(group="methods", profile="smoke", out_dir=tmp_path)
    common = dict(model=spec.name, seed=0, data="random-tokens")
    R.mixed_serving(rec, R._build(spec, s.seq, 0).eval(), spec, s, 0, "cpu", common)
    res, tim = rec.frame(), rec.frame(timing=True)
    diffs = res[res["metric"] == "mixed_batch_vs_single_rows_max_abs_diff"]
    assert set(diffs["method"]) == {"lora", "prompt"} and (diffs["value"] <= 1e-5).all()
    ratio = tim[tim["metric"] == "mixed_batch_throughput_over_single_task"]
    assert set(ratio["method"]) == {"lora", "prompt"} and (ratio["value"] > 0).all()
    rec.save()
    R.report(tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "Multi-task serving" in text and "| lora | 4 | 2 x 16 | stacked |" in text
