"""The serving group's report: report.md and one figure, from the stored CSVs only."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.fileio import atomic_write_text
from bench.report import checks_markdown, group_verdicts
from bench.report_tools import log_ticks, md_table, num, params_of, pyplot, save_figure, select, value
from bench.schema import param, read_meta, read_results

from .settings import GROUP

METHODS = ("prompt", "lora")


def report(out_dir: Path) -> None:
    out_dir = Path(out_dir)
    df, tm, meta = read_results(out_dir), read_results(out_dir, timing=True), read_meta(out_dir)
    verdicts = group_verdicts(GROUP, out_dir)
    L = ["# Serving many tasks with one frozen model (P4)", "",
         f"Profile `{meta.get('profile')}`, seed {(meta.get('seeds') or ['-'])[0]} (the parts and the rows; the "
         f"profile's first), commit {meta.get('git_commit')}, "
         f"{meta.get('hardware')}, torch threads {meta.get('torch_threads')}; {meta.get('versions')}.", "",
         "One frozen model serves K tasks, each example of a batch with its own soft prompt (prompt_bank) or its own "
         "LoRA adapter (multi_lora), against one tuned model per task, each its own copy of the weights (task k's "
         "LoRA merged into it: what a fully fine-tuned model of the same architecture costs to run). A serving "
         "window holds n requests per task, every row the same length (one length bucket, so neither side pads "
         "more), tasks interleaved; the mixed side runs one call of K n rows, the per-task side K calls of n rows. "
         "Prompt tuning's rows carry its soft prompt's extra tokens. Timings are ABBA pairs on the machine named "
         "above (bench.timing); the ratio is of median seconds.", "",
         "## Verdicts", "", *[f"- **{v.claim.id}** {v.claim.title}: **{v.status}**" for v in verdicts], "",
         checks_markdown(verdicts), ""]
    L += equivalence_section(df) + throughput_section(tm, out_dir)
    atomic_write_text(out_dir / "report.md", "\n".join(L) + "\n")


def equivalence_section(df: pd.DataFrame) -> list[str]:
    if df.empty:
        return []
    rows = []
    for m in METHODS:
        p = params_of(select(df, "p4_serving_params_ratio", method=m)["params"].iloc[0]) if len(
            select(df, "p4_serving_params_ratio", method=m)) else {}
        rows.append([m, num(value(df, f"p4_{m}_mixed_max_abs_diff", method=m), 3),
                     f"{p.get('stored_per_task', '-'):,}" if p else "-", num(value(df, "p4_serving_params_ratio",
                                                                                  method=m))])
    return ["## Same outputs, fewer parameters", "",
            md_table(["method", "max abs diff (logits) vs each task alone", "parameters stored per task",
                      "(1 frozen model + K parts) / (K tuned models)"], rows), ""]


def throughput_section(tm: pd.DataFrame, out_dir: Path) -> list[str]:
    if tm.empty:
        return []
    ns = sorted({int(n) for n in param(select(tm, "p4_batching_gain"), "requests_per_task").dropna()})
    rows = []
    for n in ns:
        gain = select(tm, "p4_batching_gain", **{"params.requests_per_task": n})
        cells = [str(n), _ratio(gain)]
        for m in METHODS:
            cells.append(_ratio(select(tm, "p4_mixed_over_per_task_throughput", method=m,
                                       **{"params.requests_per_task": n})))
        rows.append(cells)
    L = ["## Throughput of one serving window", "",
         md_table(["requests per task (n)", "batching gain: one model, K calls of n rows / one call of K n rows",
                   "prompt: mixed over K tuned models", "LoRA: mixed over K tuned models"], rows), "",
         "Each cell: the ratio of median seconds (> 1: the first named side is slower, i.e. batching or the mixed "
         "batch serves faster), with the pair ratios' quartiles. n = 1 decides P4's throughput part; the larger "
         "windows show where the advantage goes once each task fills a batch of its own.", ""]
    if _figure(tm, ns, out_dir):
        L += ["![throughput vs window](throughput.png)", ""]
    return L


def _ratio(rows: pd.DataFrame) -> str:
    if rows.empty:
        return "-"
    info = params_of(rows["info"].iloc[0])
    q = f" [{info['pair_ratio_q25']:.2f}, {info['pair_ratio_q75']:.2f}]" if "pair_ratio_q25" in info else ""
    return f"{float(rows['value'].iloc[0]):.2f}x{q}"


def _figure(tm: pd.DataFrame, ns: list[int], out_dir: Path) -> bool:
    if len(ns) < 2:
        return False
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    series = {"batching gain (one model)": select(tm, "p4_batching_gain"),
              **{f"{m}: mixed / K tuned": select(tm, "p4_mixed_over_per_task_throughput", method=m) for m in METHODS}}
    for label, rows in series.items():
        pts = sorted(zip(param(rows, "requests_per_task").astype(int), rows["value"].astype(float)))
        ax.plot([n for n, _ in pts], [v for _, v in pts], marker="o", label=label)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    log_ticks(ax, ns)
    ax.set_xlabel("requests per task in the window (n)")
    ax.set_ylabel("throughput ratio")
    ax.legend(fontsize=8)
    save_figure(fig, out_dir / "throughput.png")
    return True
