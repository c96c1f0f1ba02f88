"""report.md and PNGs of the `real` group, from the stored CSVs only: the method table (accuracy, cost), the
Pareto plot (training memory vs accuracy), the claim rows, the outlier census (Q5) and int8 (Q4)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bench.fileio import atomic_write_text
from bench.numerics.outliers import OUTLIER_MAGNITUDE
from bench.report_tools import md_table, num, pyplot, save_figure, select, with_params
from bench.schema import read_csv_checked, read_meta, read_results


def _by_method(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The per-method rows of `metric` (claims "-", A2, L3; the sweep's L4 rows left out), indexed by method."""
    d = select(frame, metric)
    return d[d["claim"].isin(["-", "A2", "L3"])].set_index("method")


def method_table(res: pd.DataFrame, tim: pd.DataFrame) -> pd.DataFrame:
    """One row per method: accuracy and its interval, seed sd, parameter share, file bytes, training memory
    (MB), step time, the steps each run used, and how many runs were still improving at the cap."""
    acc, step_t = _by_method(res, "mean_test_accuracy"), _by_method(tim, "mean_step_time_s")
    rows = []
    for m in acc.index:
        info = json.loads(acc.loc[m, "info"] or "{}")
        r_main = json.loads(acc.loc[m, "params"]).get("r")
        steps = with_params(select(res, "steps_used", method=m), "r")
        runs = steps[steps["r"].map(lambda v: pd.isna(v) if r_main is None else v == r_main)]
        rows.append({"method": m, "accuracy": acc.loc[m, "value"], "ci95": info.get("ci95"),
                     "seed_sd": info.get("seed_sd"), "trainable %": _by_method(res, "trainable_pct").loc[m, "value"],
                     "file bytes": _by_method(res, "adapter_bytes").loc[m, "value"],
                     "train memory MB": _by_method(res, "train_memory_bytes").loc[m, "value"] / 1e6,
                     "step s": step_t.loc[m, "value"] if m in step_t.index else float("nan"),
                     "steps used": "/".join(str(int(v)) for v in runs["value"]),
                     "at cap, improving": int(info.get("runs_still_improving_at_cap", 0))})
    return pd.DataFrame(rows)


def pareto_figure(tab: pd.DataFrame, path: Path) -> None:
    """Training memory (log MB) vs test accuracy with its 95% interval, one point per method."""
    fig, ax = pyplot().subplots(figsize=(6, 4))
    for _, r in tab.iterrows():
        lo, hi = r["ci95"] or (r["accuracy"], r["accuracy"])
        ax.errorbar(r["train memory MB"], r["accuracy"], yerr=[[r["accuracy"] - lo], [hi - r["accuracy"]]], fmt="o")
        ax.annotate(r["method"], (r["train memory MB"], r["accuracy"]), textcoords="offset points", xytext=(4, 4))
    ax.set_xscale("log")
    ax.set_xlabel("training memory (MB, weights + grads + AdamW + activations)")
    ax.set_ylabel("test accuracy (95% bootstrap CI)")
    ax.set_title("MiniLM on Rotten Tomatoes: memory vs accuracy")
    save_figure(fig, path)


def census_figure(census: pd.DataFrame, path: Path) -> None:
    """max |LayerNorm output| per LayerNorm, against the outlier magnitude."""
    fig, ax = pyplot().subplots(figsize=(7, 3.5))
    ax.bar(range(len(census)), census["max_abs"], label="max |x|")
    ax.axhline(OUTLIER_MAGNITUDE, color="k", ls="--", lw=1, label=f"|x| = {OUTLIER_MAGNITUDE:g}")
    ax.set_xticks(range(len(census)))
    ax.set_xticklabels([n.replace("bert.", "").replace("encoder.layer.", "L").replace(".LayerNorm", "")
                        for n in census["layernorm"]], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("max |LayerNorm output|")
    ax.set_title("MiniLM outlier census (LayerNorm outputs feeding a Linear)")
    ax.legend()
    save_figure(fig, path)


def intro(meta: dict) -> list[str]:
    s = meta.get("settings", {})
    return [f"# real: all-MiniLM-L6-v2 on Rotten Tomatoes ({meta.get('profile', '?')} profile)", "",
            f"Wall time {meta.get('wall_s', float('nan')) / 60:.1f} min on {meta.get('hardware', '?')}; "
            f"data file sha256 {str(meta.get('data_file_sha256', '?'))[:12]}, weights sha256 "
            f"{str(meta.get('model_weights_sha256', '?'))[:12]}.", "",
            "Task: fresh (1) vs rotten (0) critic snippets, split by movie (seed "
            f"{s.get('split_seed')}; no movie in two splits), then seeded subsamples: train {s.get('train_rows')}, "
            f"validation {s.get('val_rows')}, test {s.get('test_rows')} snippets (max {s.get('max_length')} tokens). "
            "Head: mean-pooled last hidden state -> Linear(384, 2), trainable for every method. "
            f"Early stopping on validation accuracy every {s.get('eval_every')} steps, patience {s.get('patience')}, "
            f"cap {s.get('max_steps')} steps (batch {s.get('batch')}); the best checkpoint is scored on test. "
            "Accuracy interval: 95% bootstrap over test items and seeds.", ""]


def methods_section(tab: pd.DataFrame) -> list[str]:
    rows = [[r["method"], f"{r['accuracy']:.4f}", "[{}, {}]".format(*(r["ci95"] or ["-", "-"])),
             num(r["seed_sd"], 3), f"{r['trainable %']:.3g}", num(r["file bytes"]), f"{r['train memory MB']:.1f}",
             num(r["step s"], 3), r["steps used"], r["at cap, improving"]] for _, r in tab.iterrows()]
    return [md_table(["method", "test accuracy", "95% CI", "seed sd", "trainable %", "file bytes",
                      "train memory MB", "step s", "steps used", "at cap, improving"], rows),
            "", "![memory vs accuracy](pareto.png)"]


def claims_section(res: pd.DataFrame) -> list[str]:
    rows = [[r["claim"], r["metric"], r["method"], num(r["value"]), f"`{r['params']}`"]
            for _, r in res[res["claim"] != "-"].iterrows()]
    return ["", "## Claim rows", "", md_table(["claim", "metric", "method", "value", "params"], rows)]


def census_section(census: pd.DataFrame) -> list[str]:
    rows = [[r["layernorm"], f"{r['max_abs']:.2f}", f"{r['tokens_ge6']:.3f}", r["dims_ge6"], f"{r['kurtosis']:.1f}",
             r["top_dims"], r["top_abs"]] for _, r in census.iterrows()]
    return ["", "## Outlier census (Q5)", "", "![census](census.png)", "",
            md_table(["LayerNorm", "max abs", "tokens with |x|>=6", "dims reaching 6", "kurtosis", "top dims",
                      "top abs"], rows)]


def int8_section(q: pd.DataFrame, meta: dict) -> list[str]:
    rows = [[r["quant"], f"{r['accuracy']:.4f}", f"{r['accuracy_drop']:.4f}", f"{r['kl']:.3g}", f"{r['emb_cos']:.5f}",
             f"{r['pred_flip_share']:.4f}"] for _, r in q.iterrows()]
    lines = ["", "## Int8 (Q4) on the fully fine-tuned model (seed 0)", "",
             md_table(["quantizer", "accuracy", "drop vs fp32", "KL(fp32 ‖ int8)", "embedding cosine",
                       "flipped predictions"], rows)]
    if meta.get("bnb_error"):
        lines.append(f"\nbitsandbytes did not run: {meta['bnb_error']}")
    return lines


def report(out_dir: Path) -> Path:
    """report.md, pareto.png and (with census.csv) census.png in out_dir."""
    out = Path(out_dir)
    res, tim, meta = read_results(out), read_results(out, timing=True), read_meta(out)
    if res.empty:
        return atomic_write_text(out / "report.md", "# real\n\nNo results yet: run `python -m bench repro real`.\n")
    tab = method_table(res, tim)
    pareto_figure(tab, out / "pareto.png")
    lines = intro(meta) + methods_section(tab) + claims_section(res)
    census = read_csv_checked(out / "census.csv") if (out / "census.csv").exists() else pd.DataFrame()
    if len(census):
        census_figure(census, out / "census.png")
        lines += census_section(census)
    if (out / "int8.csv").exists():
        lines += int8_section(read_csv_checked(out / "int8.csv"), meta)
    return atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
