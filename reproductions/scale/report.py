"""The scale group's report.md, summary.csv and figures, written from the stored CSVs alone (no run needed)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench.claims import get
from bench.fileio import atomic_write_text
from bench.report import checks_markdown, group_verdicts
from bench.report_tools import (MISSING, finite, log_ticks, md_table, num, params_of, pyplot, save_figure, select,
                                value, with_params)
from bench.schema import read_meta, read_results, write_frame
from reproductions.scale.derive import ablation_runs, runs_frame, sample_sd, stats
from reproductions.scale.settings import CLAIMS, GROUP, METHODS, METRIC, TASKS, ZERO_SHOT

PLACES = 3          # decimals of accuracies, BLEU and losses (0-1 metrics: 400 test items resolve 0.0025)


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """rung x task x method: seed mean, sd and count of the task's metric, and the stored % per task."""
    runs = runs_frame(df)
    main = runs[runs["phase"].isin(["main", "zeroshot"])]
    rows = []
    for (model, task, method), g in main.groupby(["model", "task", "method"], sort=False):
        v = g[g["metric"] == METRIC[task]]["value"]
        pct = g[g["metric"] == "stored_pct"]["value"]
        untrained = 0.0 if method in (ZERO_SHOT, "frozen") else math.nan    # stores nothing
        rows.append({"model": model, "rung_params": int(g["rung_params"].iloc[0]), "task": task, "method": method,
                     "metric": METRIC[task], "mean": float(np.mean(v)) if len(v) else math.nan, "sd": sample_sd(v),
                     "n": len(v), "stored_pct": float(pct.mean()) if len(pct) else untrained})
    return pd.DataFrame(rows)


def _dec(x, places: int = PLACES) -> str:
    """x rounded to `places` decimals, through the shared formatter (so an sd of 1e-16 reads 0, not noise)."""
    return num(round(float(x), places), 8) if finite(x) else MISSING


def _mean_sd(mean, sd) -> str:
    """mean +- sd (the sd left out when there is none: one seed)."""
    return _dec(mean) + (f" +- {_dec(sd)}" if finite(sd) else "")


def write_report(out: Path) -> Path:
    out = Path(out)
    df, meta, tm = read_results(out), read_meta(out), read_results(out, timing=True)
    table = summary_table(df)
    write_frame(out / "summary.csv", table)
    runs = runs_frame(df)
    chance = select(df, "knowledge_chance").set_index("model")["value"].to_dict()
    L = _header(meta) + _verdicts(out) + _lr_search(df, meta) + _main_tables(table, chance)
    figs = _main_figures(out, table, chance)
    for section in (_low_data(out, runs), _ablations(out, runs, meta.get("settings", {}))):
        L += section[0]
        figs += section[1]
    L += _p4(df, tm) + ["## Figures", ""]
    for title, f in figs:
        L += [f"{title}:", "", f"![{title}]({f})", ""]
    L += ["Per-run rows: `results.csv` (claim `-`: the sweep; derived metrics carry their claim); per-cell means: "
          "`summary.csv`; wall times: `timings.csv`.", ""]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(L) + "\n")
    return path


def report(out_dir: Path) -> None:
    write_report(Path(out_dir))


# ============================================================================================ sections

def _header(meta: dict) -> list[str]:
    st = meta.get("settings", {})
    L = ["# Scale: do the lightweight methods catch up with full fine-tuning as the model grows?", "",
         "Claims P1 (P-tuning), P2 (prefix tuning), P3 (prompt tuning closes the gap), P4 (mixed-task batches), "
         "A1 (adapters). **Scale: toy** on the embedded ladder (GPT-2-style models of 0.1-5M parameters on a "
         "synthetic world, 2-core CPU), not T5-XXL / GPT-2 Large / BERT-Large: the direction of each effect is "
         "compared with the papers', not their numbers. Rows from `--model` checkpoints are marked scale paper.", "",
         f"- models: {', '.join(meta.get('rungs', []))}; seeds {meta.get('seeds')}; profile `{meta.get('profile')}`; "
         f"{meta.get('wall_s')} s wall with {meta.get('threads')} torch threads (load average at end "
         f"{meta.get('load_average_1m_at_end')}); versions {meta.get('versions')}",
         f"- knowledge: table form, 5 attributes, tuned on train people, accuracy on test people over the "
         f"attribute's values; {st.get('k_steps')} steps x batch {st.get('k_batch')}",
         f"- d2t: table -> sentence, {st.get('per_person')} rows/person, BLEU (0-1) of greedy output on "
         f"{st.get('d_eval_rows')} test rows (one per test person); {st.get('d_steps')} steps x batch {st.get('d_batch')}",
         f"- methods: prefix n = {st.get('prefix_len')} (MLP reparam, hidden {st.get('prefix_hidden')}, folded); "
         f"prompt n = {st.get('prompt_len')} ({st.get('prompt_init')} init); P-tuning n = {st.get('prompt_len')} "
         f"({st.get('ptuning_encoder')} encoder, folded); LoRA r = {st.get('lora_r')}, alpha = {st.get('lora_alpha')}; "
         f"adapters size d/{st.get('adapter_ratio')}; BitFit; all through bench.train (AdamW, 10% warmup, cosine)",
         "- `stored %` = what one task stores (the whole model for full FT; folded prefix / prompt; adapters + "
         "layer norms; LoRA A, B; biases) over the base model's parameters", ""]
    return L + [f"- note: {note}" for note in meta.get("notes", [])]


def _verdicts(out: Path) -> list[str]:
    L = ["", "## Verdicts", ""] + [f"- **{cid}** rule: {get(cid).rule or '(none)'}" for cid in CLAIMS]
    return L + ["", checks_markdown(group_verdicts(GROUP, out)), ""]


def _lr_search(df: pd.DataFrame, meta: dict) -> list[str]:
    """Every grid point of the search with its validation scores and the selected lr, then the rates used."""
    L = []
    srch = with_params(df[df["metric"].str.startswith("lr_search_")], "task", "lr")
    if not srch.empty:
        srch["sel"] = srch["info"].map(lambda x: bool(params_of(x).get("selected")))
        rows = []
        for (m, t, lr), g in srch.groupby(["method", "task", "lr"], sort=False):
            acc = value(g, "lr_search_val_accuracy")
            rows.append([m, t, f"{lr:g}", _dec(acc), _dec(value(g, "lr_search_val_loss")),
                         "**yes**" if g["sel"].iloc[0] else ""])
        L += ["## Learning-rate search", "",
              f"On `{meta.get('search_rung')}`, seed {meta.get('seeds', [0])[0]}, selected on validation people "
              "(knowledge: accuracy, ties by loss; d2t: loss). Cache: " +
              ", ".join(f"{k} {v}" for k, v in sorted(meta.get("lr_search", {}).items())) + ".", "",
              md_table(["method", "task", "lr", "val accuracy", "val loss", "selected"], rows), ""]
    used = meta.get("chosen_lrs", {})
    if used:
        L += ["Learning rates used: " + ", ".join(f"{k} {v:g}" for k, v in sorted(used.items())), ""]
    return L


def _main_tables(table: pd.DataFrame, chance: dict) -> list[str]:
    """Per task: method x rung, seed mean +- sd of the task's metric with the stored %; chance for knowledge."""
    L = []
    for task in TASKS:
        tt = table[table["task"] == task]
        if tt.empty:
            continue
        models = list(dict.fromkeys(tt.sort_values("rung_params")["model"]))
        meths = [m for m in (ZERO_SHOT, "frozen", *METHODS) if m in set(tt["method"])]
        header = ["method"] + [f"{m} ({num(tt[tt['model'] == m]['rung_params'].iloc[0])})" for m in models]
        rows = []
        for meth in meths:
            cells = []
            for m in models:
                r = tt[(tt["model"] == m) & (tt["method"] == meth)]
                cells.append(MISSING if r.empty else
                             f"{_mean_sd(r['mean'].iloc[0], r['sd'].iloc[0])} ({_dec(r['stored_pct'].iloc[0], 2)}%)")
            rows.append([meth] + cells)
        if task == "knowledge" and chance:
            rows.append(["chance"] + [_dec(chance.get(m, math.nan)) for m in models])
        L += [f"## {task}: {METRIC[task]} (mean +- sd over seeds; stored % per task)", "", md_table(header, rows), ""]
    return L


def _main_figures(out: Path, table: pd.DataFrame, chance: dict) -> list[tuple[str, str]]:
    """metric vs parameters and gap (full FT minus method) vs parameters, one panel per task."""
    tasks = [t for t in TASKS if not table[table["task"] == t].empty]
    if not tasks:
        return []
    plt = pyplot()
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    fig2, axes2 = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    for ax, ax2, task in zip(axes[0], axes2[0], tasks):
        tt = table[table["task"] == task].sort_values("rung_params")
        full = tt[tt["method"] == "full"].set_index("model")
        for meth in [m for m in (*METHODS, ZERO_SHOT) if m in set(tt["method"])]:
            d = tt[tt["method"] == meth]
            ax.errorbar(d["rung_params"], d["mean"], yerr=d["sd"].fillna(0), marker="o", capsize=3,
                        ls="--" if meth == ZERO_SHOT else "-", label=meth)
            if meth != "full" and not full.empty:
                d = d[d["model"].isin(full.index)]
                gap = full.loc[d["model"], "mean"].to_numpy() - d["mean"].to_numpy()
                # independent seeds on both sides: sd of the difference of means' runs, sqrt(sd_full^2 + sd_m^2)
                err = np.hypot(full.loc[d["model"], "sd"].fillna(0).to_numpy(), d["sd"].fillna(0).to_numpy())
                ax2.errorbar(d["rung_params"], gap, yerr=err, marker="o", capsize=3,
                             ls="--" if meth == ZERO_SHOT else "-", label=meth)
        if task == "knowledge" and chance:
            xs = tt.drop_duplicates("model")
            ax.plot(xs["rung_params"], [chance.get(m, math.nan) for m in xs["model"]], "k:", label="chance")
        ax.set(xlabel="model parameters (log scale)", ylabel=METRIC[task], title=f"{task}")
        ax2.axhline(0, color="k", lw=0.8)
        ax2.set(xlabel="model parameters (log scale)", ylabel=f"full FT minus method ({METRIC[task]}), +- sd",
                title=task)
        for a in (ax, ax2):
            log_ticks(a, tt["rung_params"].unique(), base=10)
            a.tick_params(axis="x", labelsize=7)
        ax.legend(fontsize=7)
        ax2.legend(fontsize=7)
    fig.tight_layout()
    fig2.tight_layout()
    save_figure(fig, out / "metric_vs_params.png")
    save_figure(fig2, out / "gap_vs_params.png")
    return [("metric vs parameters, one line per method (the Figure-1 analogue)", "metric_vs_params.png"),
            ("gap (full FT minus method) vs parameters", "gap_vs_params.png")]


def _low_data(out: Path, runs: pd.DataFrame) -> tuple[list[str], list]:
    """P2's low-data run: BLEU of full FT and prefix tuning per training size, table and figure."""
    low = runs[(runs["phase"] == "lowdata") & (runs["metric"] == "bleu")]
    if low.empty:
        return [], []
    st_low = stats(low, "bleu", ["size", "method"])
    rows = []
    for n, g in st_low.groupby("size"):
        by = g.set_index("method")
        rows.append([int(n)] + [_mean_sd(by.loc[m, "mean"], by.loc[m, "sd"]) if m in by.index else MISSING
                                for m in ("full", "prefix")])
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    for m, g in st_low.groupby("method"):
        ax.errorbar(g["size"], g["mean"], yerr=g["sd"].fillna(0), marker="o", capsize=3, label=m)
    ax.set(xscale="log", xlabel="training rows", ylabel="BLEU", title="low data (Li & Liang Sec. 6.3)")
    ax.legend()
    save_figure(fig, out / "lowdata.png")
    L = ["## P2 low data (d2t, largest rung): BLEU mean +- sd", "",
         md_table(["training rows", "full", "prefix"], rows), ""]
    return L, [("P2 low data: prefix vs full FT", "lowdata.png")]


def _ablations(out: Path, runs: pd.DataFrame, st: dict) -> tuple[list[str], list]:
    """P3's ablations: knowledge accuracy per rung, prompt length and init, table and figure."""
    abl = ablation_runs(runs)
    abl = abl[abl["metric"] == "accuracy"]
    if abl.empty:
        return [], []
    st_abl = stats(abl, "accuracy", ["model", "n", "init"])
    rows = [[r.model, int(r.n), r.init, _mean_sd(r.mean, r.sd)]
            for r in st_abl.sort_values(["model", "init", "n"]).itertuples()]
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for m, g in st_abl.groupby("model"):
        gl = g[g["init"] == "labels"].sort_values("n")
        a1.errorbar(gl["n"], gl["mean"], yerr=gl["sd"].fillna(0), marker="o", capsize=3, label=m)
        gi = g[g["n"] == st.get("prompt_len", 20)]
        a2.errorbar(gi["init"], gi["mean"], yerr=gi["sd"].fillna(0), marker="o", capsize=3, label=m)
    a1.set(xscale="log", xlabel="prompt length", ylabel="accuracy", title="prompt length (class-label init)")
    a2.set(xlabel="init", ylabel="accuracy", title=f"init (length {st.get('prompt_len', 20)})")
    a1.legend(fontsize=7)
    a2.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out / "ablations.png")
    L = ["## P3 ablations (knowledge accuracy, mean +- sd)", "",
         md_table(["model", "length", "init", "accuracy"], rows), ""]
    return L, [("P3 ablations: prompt length and init", "ablations.png")]


def _p4(df: pd.DataFrame, tm: pd.DataFrame) -> list[str]:
    """P4: equivalence and serving parameters (results.csv), batch timings (timings.csv), per method."""
    p4 = select(df, claim="P4")
    if p4.empty:
        return []
    rows = []
    for m in ("prompt", "lora"):
        g, t = select(p4, method=m), select(tm, claim="P4", method=m)
        rows.append([m, num(value(g, f"p4_{m}_mixed_max_abs_diff"), 3), _dec(value(g, "p4_serving_params_ratio")),
                     _dec(value(t, "p4_mixed_batch_s"), 4), _dec(value(t, "p4_per_task_batches_s"), 4),
                     _dec(value(t, "p4_mixed_examples_per_s_over_per_task"), 2) + "x"])
    return ["## P4 mixed-task batches", "",
            md_table(["method", "max abs diff (logits)", "serving params ratio", "mixed batch s",
                      "one batch per task s", "speed-up"], rows),
            "", "Timings are medians of round-robin rounds on a shared 2-core machine (indicative only).", ""]
