"""report.md and PNGs of the `real` group, from the stored CSVs only."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bench.fileio import atomic_savefig, atomic_write_text
from bench.schema import read_csv_checked, read_meta, read_results


def _p(df, key):
    return df["params"].map(lambda s: json.loads(s).get(key) if s else None)


def _fmt(x, d=4):
    return "-" if pd.isna(x) else (f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.{d}g}")


def method_table(res: pd.DataFrame, tim: pd.DataFrame) -> pd.DataFrame:
    def pick(metric, frame=res):
        sub = frame[(frame["metric"] == metric) & (frame["claim"].isin(["-", "A2", "L3"]))]
        return sub.set_index("method")
    acc = pick("mean_test_accuracy")
    rows = []
    for m in acc.index:
        info = json.loads(acc.loc[m, "info"] or "{}")
        r_main = json.loads(acc.loc[m, "params"]).get("r")
        runs = res[(res["metric"] == "steps_used") & (res["method"] == m) & (_p(res, "r").map(lambda v: pd.isna(v) if r_main is None else v == r_main))]
        step_t = pick("mean_step_time_s", tim)
        rows.append({"method": m, "accuracy": acc.loc[m, "value"], "ci95": info.get("ci95"),
                     "seed_sd": info.get("seed_sd"), "trainable %": pick("trainable_pct").loc[m, "value"],
                     "file bytes": pick("adapter_bytes").loc[m, "value"],
                     "train memory MB": pick("train_memory_bytes").loc[m, "value"] / 1e6,
                     "step s": step_t.loc[m, "value"] if m in step_t.index else float("nan"),
                     "steps used": "/".join(str(int(v)) for v in runs["value"]),
                     "at cap, improving": int(info.get("runs_still_improving_at_cap", 0))})
    return pd.DataFrame(rows)


def write_report(out: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res, tim, meta = read_results(out), read_results(out, timing=True), read_meta(out)
    if res.empty:
        return atomic_write_text(out / "report.md", "# real\n\nNo results yet: run `python -m bench repro real`.\n")
    tab = method_table(res, tim)
    fig, ax = plt.subplots(figsize=(6, 4))
    for _, r in tab.iterrows():
        lo, hi = r["ci95"] or (r["accuracy"], r["accuracy"])
        ax.errorbar(r["train memory MB"], r["accuracy"], yerr=[[r["accuracy"] - lo], [hi - r["accuracy"]]], fmt="o")
        ax.annotate(r["method"], (r["train memory MB"], r["accuracy"]), textcoords="offset points", xytext=(4, 4))
    ax.set_xscale("log")
    ax.set_xlabel("training memory (MB, weights + grads + AdamW + activations)")
    ax.set_ylabel("test accuracy (95% bootstrap CI)")
    ax.set_title("MiniLM on Rotten Tomatoes: memory vs accuracy")
    atomic_savefig(out / "pareto.png", fig)
    plt.close(fig)
    census = read_csv_checked(out / "census.csv") if (out / "census.csv").exists() else pd.DataFrame()
    if len(census):
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.bar(range(len(census)), census["max_abs"], label="max |x|")
        ax.axhline(6.0, color="k", ls="--", lw=1, label="|x| = 6")
        ax.set_xticks(range(len(census)))
        ax.set_xticklabels([n.replace("bert.", "").replace("encoder.layer.", "L").replace(".LayerNorm", "")
                            for n in census["layernorm"]], rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("max |LayerNorm output|")
        ax.set_title("MiniLM outlier census (LayerNorm outputs feeding a Linear)")
        ax.legend()
        atomic_savefig(out / "census.png", fig)
        plt.close(fig)
    s = meta.get("settings", {})
    lines = [f"# real: all-MiniLM-L6-v2 on Rotten Tomatoes ({meta.get('profile', '?')} profile)", "",
             f"Wall time {meta.get('wall_s', float('nan')) / 60:.1f} min on {meta.get('hardware', '?')}; "
             f"data file sha256 {str(meta.get('data_file_sha256', '?'))[:12]}, weights sha256 "
             f"{str(meta.get('model_weights_sha256', '?'))[:12]}.", "",
             "Task: fresh (1) vs rotten (0) critic snippets, split by movie (seed "
             f"{s.get('split_seed')}; no movie in two splits), then seeded subsamples: train {s.get('train_rows')}, "
             f"validation {s.get('val_rows')}, test {s.get('test_rows')} snippets (max {s.get('max_length')} tokens). "
             "Head: mean-pooled last hidden state -> Linear(384, 2), trainable for every method. "
             f"Early stopping on validation accuracy every {s.get('eval_every')} steps, patience {s.get('patience')}, "
             f"cap {s.get('max_steps')} steps (batch {s.get('batch')}); the best checkpoint is scored on test. "
             "Accuracy interval: 95% bootstrap over test items and seeds.", "",
             "| method | test accuracy | 95% CI | seed sd | trainable % | file bytes | train memory MB | step s | steps used | at cap, improving |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in tab.iterrows():
        ci = r["ci95"] or ["-", "-"]
        lines.append(f"| {r['method']} | {r['accuracy']:.4f} | [{ci[0]}, {ci[1]}] | {_fmt(r['seed_sd'], 3)} | "
                     f"{r['trainable %']:.3g} | {_fmt(r['file bytes'])} | {r['train memory MB']:.1f} | "
                     f"{_fmt(r['step s'], 3)} | {r['steps used']} | {r['at cap, improving']} |")
    lines += ["", "![memory vs accuracy](pareto.png)", "", "## Claim rows", "", "| claim | metric | method | value | params |",
              "|---|---|---|---|---|"]
    for _, r in res[res["claim"] != "-"].iterrows():
        lines.append(f"| {r['claim']} | {r['metric']} | {r['method']} | {_fmt(r['value'])} | `{r['params']}` |")
    if len(census):
        lines += ["", "## Outlier census (Q5)", "", "![census](census.png)", "",
                  "| LayerNorm | max abs | tokens with |x|>=6 | dims reaching 6 | kurtosis | top dims | top abs |",
                  "|---|---|---|---|---|---|---|"]
        for _, r in census.iterrows():
            lines.append(f"| {r['layernorm']} | {r['max_abs']:.2f} | {r['tokens_ge6']:.3f} | {r['dims_ge6']} | "
                         f"{r['kurtosis']:.1f} | {r['top_dims']} | {r['top_abs']} |")
    if (out / "int8.csv").exists():
        q = read_csv_checked(out / "int8.csv")
        lines += ["", "## Int8 (Q4) on the fully fine-tuned model (seed 0)", "",
                  "| quantizer | accuracy | drop vs fp32 | KL(fp32 ‖ int8) | embedding cosine | flipped predictions |",
                  "|---|---|---|---|---|---|"]
        for _, r in q.iterrows():
            lines.append(f"| {r['quant']} | {r['accuracy']:.4f} | {r['accuracy_drop']:.4f} | {r['kl']:.3g} | "
                         f"{r['emb_cos']:.5f} | {r['pred_flip_share']:.4f} |")
        if meta.get("bnb_error"):
            lines.append(f"\nbitsandbytes did not run: {meta['bnb_error']}")
    return atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
