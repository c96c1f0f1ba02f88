"""The precision group's report: report.md and its two figures, from the stored CSVs only."""

from __future__ import annotations

import json

import math
from pathlib import Path

import pandas as pd

from bench.fileio import atomic_write_text
from bench.numerics import formats
from bench.report import checks_markdown, group_verdicts
from bench.report_tools import num, params_of, params_where, pyplot, save_figure, select, value
from bench.schema import param, read_meta, read_results

from .settings import GROUP, PRECISIONS


def report(out_dir: Path) -> None:
    out_dir = Path(out_dir)
    df, tm, meta = read_results(out_dir), read_results(out_dir, timing=True), read_meta(out_dir)
    verdicts = group_verdicts(GROUP, out_dir)
    L = ["# Mixed precision (M1-M3)", "", conditions(meta), "", "## Verdicts", "",
         *[f"- **{v.claim.id}** {v.claim.title}: **{v.status}**" for v in verdicts], "", checks_markdown(verdicts), ""]
    L += m1_section(df[df["claim"] == "M1"], out_dir)
    L += m2_section(df[df["claim"] == "M2"])
    L += m3_section(df[df["claim"] == "M3"], tm, meta, out_dir)
    atomic_write_text(out_dir / "report.md", "\n".join(L) + "\n")


def conditions(meta: dict) -> str:
    """The run's profile, seeds, commit, hardware, versions, and M3's device and threads."""
    return (f"Profile `{meta.get('profile')}`, seeds {meta.get('seeds')}, commit {meta.get('git_commit')}, "
            f"{meta.get('hardware')}; {meta.get('versions')}. M3 device: {meta.get('m3_device')}, "
            f"torch threads {meta.get('torch_threads')}.")


# ---------------------------------------------------------------- M1
def m1_section(m1: pd.DataFrame, out_dir: Path) -> list[str]:
    if m1.empty:
        return []
    L = ["## M1: float formats from their bit layouts", "",
         "| format | exp bits | significand bits | max | min normal | min subnormal | eps | matches torch.finfo |",
         "|---|---|---|---|---|---|---|---|"]
    for f in formats.FORMATS:
        g = lambda k: value(m1, f"format_{k}", model=f)
        mismatches = value(m1, "format_finfo_mismatches", model=f)
        checked = params_where(m1, "format_finfo_mismatches", model=f).get("checked")
        L.append(f"| {f} | {int(g('exp_bits'))} | {int(g('man_bits'))} | {g('max'):.6g} | {g('min_normal'):.6g} | "
                 f"{g('min_subnormal'):.6g} | {g('eps'):.6g} | "
                 f"{('yes' if mismatches == 0 else 'NO') if checked else 'no torch dtype (layout only)'} |")
    ov = select(m1, "fp16_overflows")
    casts = [params_of(p) for p in ov["params"]]
    over = {int(p["value"]): v for p, v in zip(casts, ov["value"])}
    fp16_max = value(m1, "format_max", model="fp16")
    L += ["", "FP16 casts: " + "; ".join(f"{int(p['value']):,} -> {p['stored_as']:g}" for p in casts) + "."]
    L += [f"The lecture's 'about 100,000 cannot be represented': {'holds' if over.get(100000) else 'does NOT hold'} "
          f"(70,000 overflows too: {bool(over.get(70000))}); FP16's largest value is {fp16_max:,.0f}. The LLM.int8() "
          f"paper's '65535' is a typo: 65,535 {'itself rounds to inf' if over.get(65535) else 'is representable'}.", "",
          "Weight 1.0 plus an update of 1e-3 x 1e-2 = 1e-5: " + ", ".join(
              f"{r.model}: {'kept' if r.value else 'vanishes'}" for r in select(m1, "update_survives").itertuples())
          + " (TF32 only rounds matmul inputs on GPUs; weights stay FP32 there).", ""]
    formats_figure(out_dir / "formats.png")
    return L + ["![formats](formats.png)", ""]


def formats_figure(path: Path) -> None:
    """Every format as a point: range (log10 of its max) against precision (-log10 of its eps)."""
    fig, ax = pyplot().subplots(figsize=(5.5, 3.5))
    for name, fm in formats.FORMATS.items():
        x, y = math.log10(fm.max), -math.log10(fm.eps)
        ax.scatter(x, y, s=60)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 5))
    ax.set_xlabel("range: log10(max)")
    ax.set_ylabel("precision: -log10(eps)")
    ax.set_title("Float formats: range vs precision")
    save_figure(fig, path)


# ---------------------------------------------------------------- M2
def m2_section(m2: pd.DataFrame) -> list[str]:
    if m2.empty:
        return []
    L = ["## M2: BLOOM-176B accounting", "",
         "Assumptions: 176e9 parameters (the blog's figure), 80 GB = 80e9 bytes per A100, perfect sharding; "
         "overhead = activations, KV cache, CUDA context as a share of the weights (inference) or the states (fine-tuning).",
         "", "| quantity | value | claimed |", "|---|---|---|"]
    for r in m2.itertuples():
        p = params_of(r.params)
        tag = ", ".join(f"{k}={v}" for k, v in p.items() if k in ("overhead", "part", "claimed_gpus"))
        L.append(f"| {r.metric}{' (' + tag + ')' if tag else ''} | {num(r.value, digits=6)} | {p.get('claimed', '')} |")
    v = lambda metric, **w: value(m2, metric, **{f"params.{k}": x for k, x in w.items()})
    L += ["", f"Reading: {v('bloom_bf16_weight_bytes') / 1e9:,.0f} GB of bf16 weights fit in "
          f"{v('bloom_inference_gpus', overhead=0.0):.0f} A100s before any overhead; the blog's 8 implies "
          f"{100 * v('bloom_implied_overhead', claimed_gpus=8):.0f}% overhead (or simply one whole 8-GPU node). "
          f"Mixed-precision Adam states take {v('finetune_bytes_per_param'):.0f} B/param = "
          f"{v('bloom_finetune_gpus', overhead=0.0):.0f} GPUs; the blog's 72 implies activations and the rest at "
          f"{100 * v('bloom_implied_overhead', claimed_gpus=72):.0f}% of the states. States / weights = "
          f"{v('bloom_finetune_over_inference_memory', overhead=0.0):.0f}x; the blog's 'about 9x' is 72 / 8 GPUs.", ""]
    return L


# ---------------------------------------------------------------- M3
def underflow_lines(m3: pd.DataFrame) -> list[str]:
    """M3's underflow regime (the loss times Settings.underflow_loss_multiplier): final losses and flushed shares."""
    u = select(m3, "m3_underflow_final_loss")
    if u.empty:
        return []
    mult = json.loads(u["params"].iloc[0]).get("loss_multiplier")
    L = [f"Underflow regime (training loss x {mult:g}, a model whose gradients are small; it decides 'loss scaling "
         "needed'):", "", "| precision | final held-out loss (mean +- sd) |", "|---|---|"]
    for prec in ("fp32", "fp16", "fp16_scaled"):
        fl = select(u, "m3_underflow_final_loss", method=prec)["value"]
        L.append(f"| {prec} | {fl.mean():.4f}" + (f" +- {fl.std():.4f}" if len(fl) > 1 else "") + " |")
    fu = value(m3, "m3_underflow_flush_share", agg="mean", method="fp16")
    fsc = value(m3, "m3_underflow_flush_share", agg="mean", method="fp16_scaled")
    return L + ["", f"There, FP16 flushes {fu:.1%} of the FP32 run's nonzero gradient values unscaled and {fsc:.2%} "
                    "after loss scaling.", ""]


def m3_section(m3: pd.DataFrame, tm: pd.DataFrame, meta: dict, out_dir: Path) -> list[str]:
    if m3.empty:
        return []
    L = ["## M3: automatic mixed precision (toy)", "",
         "| precision | final held-out loss (mean +- sd) | loss / FP32 | bytes kept for backward / FP32 | "
         "zero share of param grads | step time / FP32 (timings) |", "|---|---|---|---|---|---|"]
    for prec in PRECISIONS:
        col = lambda d, metric: select(d, metric, method=prec)["value"]
        fl, zs = col(m3, "m3_final_loss"), col(m3, "m3_grad_zero_share")
        sd = f" +- {fl.std():.4f}" if len(fl) > 1 else ""
        if prec == "fp32":
            L.append(f"| {prec} | {fl.mean():.4f}{sd} | 1 | 1 | {zs.mean():.2e} | 1 |")
            continue
        L.append(f"| {prec} | {fl.mean():.4f}{sd} | {col(m3, 'm3_final_loss_ratio_over_fp32').mean():.4f} | "
                 f"{col(m3, 'm3_saved_bytes_ratio_over_fp32').mean():.3f} | {zs.mean():.2e} | "
                 f"{col(tm, 'm3_step_time_ratio_over_fp32').mean():.2f}x |")
    fu = value(m3, "m3_grad_flush_share", agg="mean", method="fp16")
    fsc = value(m3, "m3_grad_flush_share", agg="mean", method="fp16_scaled")
    ovs = value(m3, "m3_grad_overflow_share_scaled", agg="mean")
    L += ["", f"Gradient values of the FP32 run that FP16 flushes to zero: {fu:.3e} unscaled, {fsc:.3e} after x "
          f"loss scale (overflow after scaling: {ovs:.3e}).", ""]
    L += underflow_lines(m3)
    L += [
          f"Speed is not judged on a CPU (device here: {meta.get('m3_device')}, torch CPU capability "
          f"`{meta.get('cpu_capability')}`): CPU autocast adds casts and, without 16-bit matrix units, runs slower "
          "kernels (the machine notes measured BF16 autocast 21-39x slower than FP32 on an AVX2 CPU; this tiny model "
          "is dominated by per-op overhead instead). The step-time ratios (timings.csv, taken on a shared machine) "
          "say nothing about GPUs, where the speed half of the claim lives. Memory is measured as the bytes "
          "autograd keeps for backward in the first step (parameters excluded, autocast's 16-bit weight copies "
          "included); parameters, gradients and Adam states stay FP32 in all variants, so the saving is in "
          "activations only.", ""]
    curves = select(m3, "m3_train_loss")
    if not curves.empty:
        loss_figure(curves, out_dir / "m3_loss.png")
        L += ["![m3 loss](m3_loss.png)", ""]
    return L


def loss_figure(curves: pd.DataFrame, path: Path) -> None:
    """Training loss at the census steps, mean over seeds, one line per precision."""
    curves = curves.assign(step=param(curves, "step"))
    fig, ax = pyplot().subplots(figsize=(6, 3.8))
    for prec in PRECISIONS:
        c = curves[curves["method"] == prec].groupby("step")["value"].mean()
        ax.plot(c.index, c.values, label=prec)
    ax.set_xlabel("step")
    ax.set_ylabel("train loss (mean over seeds)")
    ax.legend()
    ax.set_title("M3: training loss by precision (toy)")
    save_figure(fig, path)
