"""report.md of the methods benchmark, from the stored CSVs only: per model, the ours-vs-peft step targets (one
per method timed against peft's counterpart), the training step and memory table, the inference table and the
multi-task serving table; then our quantized Linears beside bitsandbytes'."""

from __future__ import annotations

from pathlib import Path

from bench.fileio import atomic_write_text
from bench.report_tools import finite, md_table, params_of, params_where, select, value
from bench.schema import read_meta, read_results
from reproductions.methods.quantizers import QUANTIZERS
from reproductions.methods.settings import (GROUP, LORA_TARGETS, TARGET_MERGED_OVER_BASE, TARGET_MIXED_THROUGHPUT,
                                            TARGET_OURS_OVER_PEFT, TARGET_QUANT_OURS_OVER_BNB, method_kwargs)


def _quartiles(q: dict) -> str:
    return f"{q.get('pair_ratio_q25', '?')}-{q.get('pair_ratio_q75', '?')}"


NAMES = {"lora": "LoRA"}    # how the sentences name a method; others go by their registry name


def peft_targets(tim, model: str) -> list[str]:
    """One sentence per method timed against peft's counterpart (metrics `<method>_step_ours_over_peft`), in the
    order the rows were stored."""
    metrics = [] if tim.empty else tim[tim["model"] == model]["metric"]
    methods = [m.removesuffix("_step_ours_over_peft") for m in dict.fromkeys(metrics)
               if m.endswith("_step_ours_over_peft")]
    return [line for m in methods for line in peft_target(tim, model, m)]


def peft_target(tim, model: str, method: str = "lora") -> list[str]:
    """Our step of `method` / peft's: the ABBA figure against its target, and the round-robin figure."""
    metric = f"{method}_step_ours_over_peft"
    ratio = value(tim, metric, model=model)
    if not finite(ratio):
        return []
    ok = "meets" if ratio <= TARGET_OURS_OVER_PEFT else "misses"
    q = params_where(tim, metric, model=model)
    rr = value(tim, f"{metric}_roundrobin", model=model)
    return [f"Our {NAMES.get(method, method)} training step / peft's (same settings): **{ratio:.3f}** ({ok} the "
            f"target <= {TARGET_OURS_OVER_PEFT}); ratio of medians over {q.get('pairs', '?')} ABBA pairs, per-pair "
            f"ratios median {q.get('median_of_pair_ratios', '?')}, quartiles {_quartiles(q)}. In the round-robin "
            f"over all methods below: {rr:.3f}.", ""]


def step_table(res, tim, model: str) -> list[str]:
    """Step time and memory of every method, relative to full fine-tuning."""
    rows = []
    for m in dict.fromkeys(select(tim, "train_step_s", model=model)["method"]):
        w = dict(model=model, method=m)
        rows.append([m, value(res, "trainable_params", **w), value(tim, "train_step_s", **w),
                     value(tim, "train_step_ratio_vs_full", **w), value(tim, "peak_memory_ratio_vs_full", **w)]
                    + [value(res, "memory_ratio_vs_full", **w, **{"params.part": part})
                       for part in ("total", "states", "activations")])
    if not rows:
        return []
    return ["Training step (forward + backward + AdamW) and memory, relative to full fine-tuning:", "",
            md_table(["method", "trainable params", "step s", "step / full", "peak RSS growth / full",
                      "tensor bytes / full", "AdamW states / full", "saved activations / full"], rows), ""]


def inference_table(res, tim, model: str) -> list[str]:
    """Per (batch, seq): base latency, round-robin ratios to base, the ABBA merged / base and the merge error."""
    lat = select(tim, "forward_latency_ratio_vs_base", model=model)
    if not len(lat):
        return []
    rows = []
    for b, t in dict.fromkeys((params_of(p)["batch"], params_of(p)["seq"]) for p in lat["params"]):
        w = {"model": model, "params.batch": b, "params.seq": t}
        rows.append([f"{b} x {t}", value(tim, "forward_latency_s", method="base", **w),
                     value(tim, "forward_latency_ratio_vs_base", method="lora_unmerged", **w),
                     value(tim, "forward_latency_ratio_vs_base", method="lora_merged", **w),
                     value(tim, "forward_latency_merged_over_base_paired", **w),
                     _quartiles(params_where(tim, "forward_latency_merged_over_base_paired", **w)),
                     value(res, "merged_vs_unmerged_max_abs_diff", **w)])
    return [f"Inference (eval forward), LoRA r = {method_kwargs('lora')['r']} on {', '.join(LORA_TARGETS)}; target "
            f"merged / base <= {TARGET_MERGED_OVER_BASE}, judged on the ABBA-paired figure (the round-robin columns "
            "rotate three models):", "",
            md_table(["batch x seq", "base s", "unmerged / base", "merged / base", "merged / base (ABBA pairs)",
                      "pair ratio quartiles", "max |merged - unmerged|"], rows), ""]


def mixed_table(res, tim, model: str) -> list[str]:
    """Multi-task serving: mixed / single throughput against TARGET_MIXED_THROUGHPUT, and the rows' agreement."""
    metric = "mixed_batch_throughput_over_single_task"
    mix = select(tim, metric, model=model)
    if not len(mix):
        return []
    rows = []
    for m in mix["method"]:
        q = params_where(tim, metric, model=model, method=m)
        r = value(tim, metric, model=model, method=m)
        rows.append([m, q.get("K", "?"), f"{q.get('batch', '?')} x {q.get('seq', '?')}", q.get("layout", "-"), r,
                     "meets" if r >= TARGET_MIXED_THROUGHPUT else "misses", _quartiles(q),
                     value(res, "mixed_batch_vs_single_rows_max_abs_diff", model=model, method=m)])
    return ["Multi-task serving (bench.methods.multitask): throughput of a batch mixing K tasks (rows interleaved) "
            f"over a single-task batch of the same size, ABBA pairs; target >= {TARGET_MIXED_THROUGHPUT}:", "",
            md_table(["method", "K", "batch x seq", "layout", "mixed / single throughput", "target",
                      "pair ratio quartiles", "max |mixed - row alone|"], rows), ""]


QUANT_NAMES = {"llm_int8": ("LLM.int8() (threshold 6)", "Linear8bitLt"), "nf4": ("NF4, double quantization",
                                                                            "Linear4bit")}


def _quant_target(ratio: float, target: float | None, err: dict) -> str:
    """The issue's target: ours / bitsandbytes' latency <= target at an error no larger than bitsandbytes'."""
    if target is None:
        return "-"
    if ratio > target:
        return "misses: slower"
    return "meets" if err["ours"] <= err["bnb"] else "misses: larger error"


def quant_table(res, tim) -> list[str]:
    """Part 5: per quantizer and (M, K, N), both sides' latency and error, the ABBA ratio and its target."""
    metric = "quantized_linear_latency_ours_over_bnb"
    lat = select(tim, metric)
    if not len(lat):
        return []
    rows = []
    for _, r in lat.iterrows():
        q = params_of(r["params"])
        kind, where = r["method"], {"model": r["model"], "params.M": q.get("M")}
        target = q.get("target")
        err = {side: value(res, "quantized_linear_rel_err", method=f"{side}-{kind}", **where) for side in ("ours", "bnb")}
        rows.append([QUANT_NAMES.get(kind, (kind,))[0], f"{q.get('M')} x {q.get('K')} x {q.get('N')}",
                     value(tim, "quantized_linear_latency_s", method=f"ours-{kind}", **where),
                     value(tim, "quantized_linear_latency_s", method=f"bnb-{kind}", **where), r["value"], _quartiles(q),
                     _quant_target(r["value"], target, err), err["ours"], err["bnb"]])
    nf4 = select(tim, metric, method="nf4")
    nf4_path = "?" if not len(nf4) else (params_of(nf4["info"].iloc[0]).get("bnb_cpu_path")   # runs before 2026-12-06 05:40:
                                         or params_of(nf4["params"].iloc[0]).get("bnb_cpu_path", "?"))   # in params
    return ["## Quantized Linears: ours beside bitsandbytes'", "",
            f"Eval forward of one Linear (M tokens x K in -> N out) on the same fp16-representable weights and inputs "
            f"with {q.get('outlier_cols', '?')} outlier columns; ours / bitsandbytes' latency is the ratio of medians "
            f"over {q.get('pairs', '?')} ABBA pairs (target for LLM.int8(): <= {TARGET_QUANT_OURS_OVER_BNB} at an error no larger "
            f"than bitsandbytes'; none for "
            f"NF4; bitsandbytes' NF4 path on this CPU: {nf4_path}); errors are ||y - y_fp64|| / ||y_fp64||. "
            "bitsandbytes' layers: "
            + ", ".join(f"{QUANT_NAMES[k][0]} vs `{QUANT_NAMES[k][1]}`" for k in QUANTIZERS) + ".", "",
            md_table(["quantizer", "M x K x N", "ours s", "bitsandbytes s", "ours / bitsandbytes (ABBA)",
                      "pair ratio quartiles", "target", "our error", "bitsandbytes' error"], rows), ""]


def report(out_dir: Path) -> None:
    out_dir = Path(out_dir)
    res, tim, meta = read_results(out_dir), read_results(out_dir, timing=True), read_meta(out_dir)
    parts = [f"# {GROUP}: performance of bench.methods (supporting measurements, no verdicts)", "",
             f"Profile `{meta.get('profile', '?')}`, torch threads {meta.get('torch_threads', '?')}, 1-minute load "
             f"average {meta.get('load_average_1m_at_start', '?')} at start and "
             f"{meta.get('load_average_1m_at_end', '?')} at end, on `{meta.get('hardware', '?')}`. Timings are medians of round-robin rounds in one process; "
             "the targets are judged on back-to-back ABBA pairs (see the package doc). With foreign load on the "
             "machine only the ratios within a run are meaningful.", ""]
    if tim.empty and res.empty:
        parts.append("No results yet.")
    else:
        for model in dict.fromkeys(list(res["model"]) + list(tim["model"])):
            if model.startswith("linear-"):        # part 5's single layers: their own section below
                continue
            parts += [f"## {model}", "", *peft_targets(tim, model), *step_table(res, tim, model),
                      *inference_table(res, tim, model), *mixed_table(res, tim, model)]
        parts += quant_table(res, tim)
    atomic_write_text(out_dir / "report.md", "\n".join(parts) + "\n")
