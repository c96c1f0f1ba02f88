"""The scale group's figures (reproductions.scale.report embeds them): every method vs parameters and its gap to
full FT, the Lester et al. 2021 Figure 1 analogue, P3's gap per task, the training curves at the largest rung, and the
two sections that come with a figure: P2's low data and P3's ablations. Each returns [(title, file)]; a figure whose
rows are absent is left out."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench.report_tools import MISSING, finite, log_ticks, md_table, pyplot, save_figure
from bench.stats import Z975
from reproductions.scale.derive import ablation_runs, ablation_task, stats
from reproductions.scale.settings import METHODS, METRIC, TASKS, ZERO_SHOT
from reproductions.scale.tables import gap_table, mean_sd, ordered

COLORS = dict(zip((*METHODS, ZERO_SHOT, "frozen"), (f"C{i}" for i in range(10))))   # one colour per method


def main_figures(out: Path, table: pd.DataFrame, chance: dict) -> list[tuple[str, str]]:
    """metric vs parameters and gap (full FT minus method) vs parameters, one panel per task, every method."""
    tasks = [t for t in TASKS if not table[table["task"] == t].empty]
    if not tasks:
        return []
    plt = pyplot()
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    fig2, axes2 = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    for ax, ax2, task in zip(axes[0], axes2[0], tasks):
        tt = table[table["task"] == task].sort_values("rung_params", kind="stable")
        full = tt[tt["method"] == "full"].set_index("model")
        for meth in [m for m in (*METHODS, ZERO_SHOT) if m in set(tt["method"])]:
            d, style = tt[tt["method"] == meth], dict(marker="o", capsize=3, color=COLORS.get(meth),
                                                      ls="--" if meth == ZERO_SHOT else "-", label=meth)
            ax.errorbar(d["rung_params"], d["mean"], yerr=d["sd"].fillna(0), **style)
            if meth != "full" and not full.empty:
                d = d[d["model"].isin(full.index)]
                gap = full.loc[d["model"], "mean"].to_numpy() - d["mean"].to_numpy()
                # independent seeds on both sides: sd of the difference of means' runs, sqrt(sd_full^2 + sd_m^2)
                err = np.hypot(full.loc[d["model"], "sd"].fillna(0).to_numpy(), d["sd"].fillna(0).to_numpy())
                ax2.errorbar(d["rung_params"], gap, yerr=err, **style)
        _chance_line(ax, tt, chance, task)
        ax.set(xlabel="model parameters (log scale)", ylabel=METRIC[task], title=f"{task}")
        ax2.axhline(0, color="k", lw=0.8)
        ax2.set(xlabel="model parameters (log scale)", ylabel=f"full FT minus method ({METRIC[task]}), +- sd",
                title=task)
        for a in (ax, ax2):
            log_ticks(a, tt["rung_params"].unique(), base=10)
            a.tick_params(axis="x", labelsize=7)
            a.legend(fontsize=7)
    fig.tight_layout()
    fig2.tight_layout()
    save_figure(fig, out / "metric_vs_params.png")
    save_figure(fig2, out / "gap_vs_params.png")
    return [("metric vs parameters, one line per method (mean +- sd over seeds)", "metric_vs_params.png"),
            ("gap (full FT minus method) vs parameters", "gap_vs_params.png")]


def _chance_line(ax, tt: pd.DataFrame, chance: dict, task: str) -> None:
    xs = tt.drop_duplicates("model")
    ys = [chance.get((task, m), math.nan) for m in xs["model"]]
    if any(finite(y) for y in ys):
        ax.plot(xs["rung_params"], ys, "k:", label="chance")


def band(mean, sd, n, n_test) -> float:
    """Half-width of a normal 95% band around a seed mean: Z975 x sqrt(sd^2 / n + p(1-p) / n_test) (the
    binomial term for accuracies over n_test items; each term left out when undefined)."""
    var = sd ** 2 / n if finite(sd) and n and n > 1 else 0.0
    if n_test and finite(mean) and 0 <= mean <= 1:
        var += mean * (1 - mean) / n_test
    return Z975 * math.sqrt(var)


FIG1_LINES = (("full", "model tuning (full FT)", "-"), ("prompt", "prompt tuning", "-"),
              (ZERO_SHOT, "prompt design (hand-written prompt, frozen)", "--"))


def figure1(out: Path, table: pd.DataFrame, chance: dict) -> list[tuple[str, str]]:
    """Lester et al. 2021 Figure 1 analogue per task that ran full FT and prompt tuning on >= 2 rungs (d2t: P3's
    trend, issue 30): score vs parameters for model tuning, prompt tuning and prompt design, 95% bands (seeds + test
    items), chance dotted."""
    def both(t):
        d = table[(table["task"] == t) & table["method"].isin(["full", "prompt"]) & table["mean"].notna()]
        return d.groupby("rung_params")["method"].nunique().eq(2).sum() >= 2
    tasks = [t for t in TASKS if both(t)]
    if not tasks:
        return []
    plt = pyplot()
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        tt = table[table["task"] == task].sort_values("rung_params", kind="stable")
        for meth, label, ls in FIG1_LINES:
            d = tt[tt["method"] == meth]
            if d.empty:
                continue
            half = np.array([band(r.mean, r.sd, r.n, r.n_test) for r in d.itertuples()])
            ax.plot(d["rung_params"], d["mean"], marker="o", ls=ls, color=COLORS[meth], label=label)
            ax.fill_between(d["rung_params"], d["mean"] - half, d["mean"] + half, color=COLORS[meth], alpha=0.15)
        _chance_line(ax, tt, chance, task)
        log_ticks(ax, tt["rung_params"].unique(), base=10)
        ax.set(xlabel="model parameters (log scale)", ylabel=f"{METRIC[task]} (test people)", title=task)
        ax.legend(fontsize=7)
    fig.suptitle("Lester et al. 2021 Fig. 1 analogue (bands: 95%, seeds + test items)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, out / "figure1_analogue.png")
    return [("Lester et al. 2021 Figure 1 analogue: model tuning, prompt tuning, prompt design",
             "figure1_analogue.png")]


def gap_figure(out: Path, runs: pd.DataFrame) -> list[tuple[str, str]]:
    """P3's gap (full FT minus prompt tuning) vs parameters, one line per task, 95% interval bars."""
    gaps = gap_table(runs).dropna(subset=["rung_params"])
    if gaps.empty:
        return []
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, task in enumerate(ordered(gaps["task"], TASKS)):
        d = gaps[gaps["task"] == task].sort_values("rung_params")
        err = np.vstack([(d["gap"] - d["lo"]).fillna(0), (d["hi"] - d["gap"]).fillna(0)])
        ax.errorbar(d["rung_params"] * (1 + 0.03 * i), d["gap"], yerr=err, marker="o", capsize=3,
                    label=f"{task} ({METRIC[task]})")
    ax.axhline(0, color="k", lw=0.8)
    log_ticks(ax, gaps["rung_params"].unique(), base=10)
    ax.set(xlabel="model parameters (log scale; tasks offset slightly)", ylabel="full FT minus prompt tuning",
           title="the gap prompt tuning should close (95% intervals)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out / "prompt_gap_vs_params.png")
    return [("P3: gap (full FT minus prompt tuning) vs parameters, per task", "prompt_gap_vs_params.png")]


def curves_figure(out: Path, per_run: pd.DataFrame) -> list[tuple[str, str]]:
    """Training curves at each task's largest rung: per method, its first seed's train loss (dashed) and validation
    answer loss (solid) vs step, the kept (best) step marked, the cap dotted."""
    main = per_run[(per_run["phase"] == "main") & per_run["curve"].map(bool)]
    tasks = ordered(main["task"], TASKS)
    if not tasks:
        return []
    plt = pyplot()
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        t = main[main["task"] == task]
        top = t[t["rung_params"] == t["rung_params"].max()]
        ys = []
        for meth in ordered(top["method"], METHODS):
            r = top[top["method"] == meth].sort_values("seed").iloc[0]
            c = curve_array(r["curve"])
            if not len(c):
                continue
            ax.plot(c[:, 0], c[:, 2], "-", color=COLORS.get(meth), label=meth)
            ax.plot(c[:, 0], c[:, 1], "--", color=COLORS.get(meth))
            best = c[c[:, 0] == r["best_step"]]
            ax.plot(best[:, 0], best[:, 2], "o", color=COLORS.get(meth), ms=4)
            ys += [y for y in c[:, 1:].ravel() if finite(y)]
        if finite(top["cap"].max()):
            ax.axvline(top["cap"].max(), color="k", ls=":", lw=0.8)
        if ys and min(ys) > 0 and max(ys) / min(ys) > 3:      # a wide range: log y (narrow: linear reads better)
            _log_y(ax, max(ys) / min(ys))
        ax.set(xlabel="step", ylabel="answer loss (nats/token)",
               title=f"{task}, {top['model'].iloc[0]}, seed {int(top['seed'].min())}")
        ax.legend(fontsize=7)
    fig.suptitle("validation loss (solid; dot: kept step) and training loss (dashed); cap dotted", fontsize=9)
    fig.tight_layout()
    save_figure(fig, out / "curves_largest_rung.png")
    return [("training curves at the largest rung (first seed per method)", "curves_largest_rung.png")]


def _log_y(ax, span: float) -> None:
    """A log y axis labelled in plain numbers, not powers of ten: every tick when the values span less than 30x,
    else 1, 2 and 5 of each decade."""
    from matplotlib.ticker import FuncFormatter
    ax.set_yscale("log")
    keep = range(1, 10) if span < 30 else (1, 2, 5)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(
        lambda v, _: f"{v:g}" if v > 0 and round(v / 10 ** math.floor(math.log10(v))) in keep else ""))


def curve_array(curve) -> np.ndarray:
    """A steps_used row's curve as an (evaluations, 3) float array (step, train loss, val loss); malformed
    points are left out."""
    pts = [[float(x) if finite(x) else math.nan for x in pt[:3]] for pt in curve
           if isinstance(pt, (list, tuple)) and len(pt) >= 3]
    return np.array(pts, float).reshape(-1, 3)


def low_data(out: Path, runs: pd.DataFrame) -> tuple[list[str], list]:
    """P2's low-data run: BLEU of full FT and prefix tuning per training size, table and figure."""
    low = runs[(runs["phase"] == "lowdata") & (runs["metric"] == "bleu")]
    low = low[pd.to_numeric(low["size"], errors="coerce").notna()]
    if low.empty:
        return [], []
    st_low = stats(low, "bleu", ["size", "method"])
    rows = []
    for n, g in st_low.groupby("size"):
        by = g.set_index("method")
        rows.append([int(n)] + [mean_sd(by.loc[m, "mean"], by.loc[m, "sd"]) if m in by.index else MISSING
                                for m in ("full", "prefix")])
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    for m, g in st_low.groupby("method"):
        ax.errorbar(g["size"], g["mean"], yerr=g["sd"].fillna(0), marker="o", capsize=3, color=COLORS.get(m), label=m)
    ax.set(xscale="log", xlabel="training rows", ylabel="BLEU", title="low data (Li & Liang Sec. 6.3)")
    ax.legend()
    save_figure(fig, out / "lowdata.png")
    L = [f"## P2 low data (d2t, {', '.join(sorted(set(low['model'])))}): BLEU mean +- sd", "",
         md_table(["training rows", "full", "prefix"], rows), ""]
    return L, [("P2 low data: prefix vs full FT", "lowdata.png")]


def ablations(out: Path, runs: pd.DataFrame, st: dict) -> tuple[list[str], list]:
    """P3's ablations: accuracy per rung on their task, prompt length and init, table and figure."""
    abl = ablation_runs(runs)
    abl = abl[(abl["metric"] == "accuracy") & pd.to_numeric(abl["n"], errors="coerce").notna() & abl["init"].notna()]
    if abl.empty:
        return [], []
    st_abl = stats(abl, "accuracy", ["model", "n", "init"])
    rows = [[r.model, int(r.n), r.init, mean_sd(r.mean, r.sd)]
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
    L = [f"## P3 ablations ({ablation_task(runs)} accuracy, mean +- sd)", "",
         md_table(["model", "length", "init", "accuracy"], rows), ""]
    return L, [("P3 ablations: prompt length and init", "ablations.png")]
