"""The report's figures, from results.csv's per-run frame and curves.csv; each returns (title, file name).

Figures 1 and 2 of Kalajdzievski 2023 have analogues here: the loss curves per rank, and the gradient norms
against the rank.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.report_tools import log_ticks, num, pyplot, save_figure, select, with_params
from reproductions.rslora.derive import per_rank, per_run_frame
from reproductions.rslora.settings import METHODS

TITLE = {"lora": "LoRA (alpha/r)", "rslora": "rsLoRA (alpha/sqrt(r))"}       # a panel per scaling
LEGEND = {"lora": "LoRA alpha/r", "rslora": "rsLoRA alpha/sqrt(r)"}         # a line per scaling
NORMS = (("mean_param_grad_norm", "param grad norm"), ("mean_update_grad_norm", "update grad norm"),
         ("mean_update_step_norm", "update step norm"))


def rank_colors(ranks) -> dict:
    """One viridis colour per rank, small ranks dark."""
    cmap = pyplot().get_cmap("viridis")
    return {r: cmap(i / max(len(ranks) - 1, 1)) for i, r in enumerate(ranks)}


def _per_rank_runs(cur: pd.DataFrame, ranks):
    """(r, rows of that rank) for the ranks that ran."""
    for r in ranks:
        c = cur[cur["r"] == r]
        if not c.empty:
            yield r, c


def _errorbars(ax, pr: pd.DataFrame) -> None:
    """Seed mean +- sd against r, one line per scaling (pr: per_rank's frame of one lr)."""
    for m, mk in zip(METHODS, ("o-", "s-")):
        pm = pr[pr["method"] == m]
        ax.errorbar(pm["r"], pm["mean"], yerr=pm["sd"].fillna(0), fmt=mk, capsize=3, label=LEGEND[m])


def loss_curves(out: Path, curves: pd.DataFrame, lrs, ranks) -> tuple[str, str]:
    """Training loss (5-step moving average of the seed mean) and held-out loss per rank; LoRA | rsLoRA per lr."""
    plt, colors = pyplot(), rank_colors(ranks)
    base_held = curves[curves["method"] == "base"]["heldout_loss"]
    fig, axes = plt.subplots(len(lrs), 2, figsize=(10, 3.6 * len(lrs)), sharey="row", squeeze=False)
    for i, lr in enumerate(lrs):
        for j, m in enumerate(METHODS):
            ax = axes[i][j]
            for r, c in _per_rank_runs(curves[(curves["lr"] == lr) & (curves["method"] == m)], ranks):
                smooth = c.groupby("step")["train_loss"].mean().rolling(5, min_periods=1).mean()
                ax.plot(smooth.index, smooth.values, color=colors[r], lw=1.2, label=f"r={int(r)}")
                v = c.dropna(subset=["heldout_loss"]).groupby("step")["heldout_loss"].mean()
                if len(base_held):                                   # step 0: the base model, shared by all
                    v = pd.concat([pd.Series([float(base_held.iloc[0])], index=[0]), v])
                ax.plot(v.index, v.values, "o--", color=colors[r], ms=3, lw=0.8)
            ax.set(title=f"{TITLE[m]}, lr {num(lr)}", xlabel="step", ylabel="loss (nats/token)", yscale="log")
            if i == 0 and j == 1:
                ax.legend(fontsize=7, ncol=2)
    fig.suptitle("training loss (line, seed mean, 5-step moving average) and held-out loss (dashed)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, out / "loss_curves.png")
    return "loss curves per rank (the paper's Figure 1 analogue)", "loss_curves.png"


def final_loss_vs_rank(out: Path, runs: pd.DataFrame, lrs, ranks) -> tuple[str, str]:
    fig, axes = pyplot().subplots(1, len(lrs), figsize=(5 * len(lrs), 3.8), squeeze=False)
    for i, lr in enumerate(lrs):
        ax = axes[0][i]
        _errorbars(ax, per_rank(runs[runs["lr"] == lr], "final_heldout_loss"))
        ax.set(xlabel="rank r", ylabel="final held-out loss", title=f"lr {num(lr)}")
        log_ticks(ax, ranks)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out / "final_loss_vs_rank.png")
    return "final held-out loss vs rank (seed mean +- sd)", "final_loss_vs_rank.png"


def gradnorm_vs_rank(out: Path, runs: pd.DataFrame, lrs, ranks) -> tuple[str, str]:
    fig, axes = pyplot().subplots(len(lrs), 3, figsize=(13, 3.6 * len(lrs)), squeeze=False)
    for i, lr in enumerate(lrs):
        for j, (metric, label) in enumerate(NORMS):
            ax = axes[i][j]
            _errorbars(ax, per_rank(runs[runs["lr"] == lr], metric))
            ax.set(yscale="log", xlabel="rank r", ylabel=label, title=f"{label}, lr {num(lr)}")
            log_ticks(ax, ranks)
            if i == 0 and j == 0:
                ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out / "gradnorm_vs_rank.png")
    return "gradient and update norms vs rank, step mean (the paper's Figure 2 analogue)", "gradnorm_vs_rank.png"


def gradnorm_curves(out: Path, curves: pd.DataFrame, main_lr, ranks) -> tuple[str, str]:
    """sqrt(grad_A^2 + grad_B^2) of the seed means over training, at the main lr."""
    colors = rank_colors(ranks)
    fig, axes = pyplot().subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, m in zip(axes, METHODS):
        for r, c in _per_rank_runs(curves[(curves["lr"] == main_lr) & (curves["method"] == m)], ranks):
            g = c.groupby("step")[["grad_A", "grad_B"]].mean()
            ax.plot(g.index, np.hypot(g["grad_A"], g["grad_B"]), color=colors[r], lw=1, label=f"r={int(r)}")
        ax.set(yscale="log", xlabel="step", ylabel="param grad norm (seed mean)", title=f"{TITLE[m]}, lr {num(main_lr)}")
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    save_figure(fig, out / "gradnorm_curves.png")
    return "adapter gradient norm over training per rank", "gradnorm_curves.png"


def scaling_vs_rank(out: Path, df: pd.DataFrame, alpha: float) -> tuple[str, str] | None:
    """The scaling read from the modules (one value per method and r) on the two formulas; None when no run."""
    sc = with_params(select(df, "scaling_applied"), "r")
    if sc.empty:
        return None
    fig, ax = pyplot().subplots(figsize=(5, 3.6))
    rr = np.array(sorted(sc["r"].unique()), float)
    ax.plot(rr, alpha / rr, "-", color="C0", lw=0.8, label="alpha/r")
    ax.plot(rr, alpha / np.sqrt(rr), "-", color="C1", lw=0.8, label="alpha/sqrt(r)")
    for m, mk, col in zip(METHODS, ("o", "s"), ("C0", "C1")):
        d = sc[sc["method"] == m].groupby("r")["value"].first()
        ax.plot(d.index, d.values, mk, color=col, mfc="none", label=f"read from {m} modules")
    ax.set(yscale="log", xlabel="rank r", ylabel="scaling s", title=f"alpha = {alpha:g}")
    log_ticks(ax, rr)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out / "scaling_vs_rank.png")
    return "the scaling read from the modules vs the formulas", "scaling_vs_rank.png"


def tuned_loss_vs_rank(out: Path, df: pd.DataFrame) -> tuple[str, str] | None:
    """Final held-out loss at each (scaling, rank)'s own searched lr against r, seed mean +- sd, the pick
    written beside each point; None when the run has no tuned runs."""
    pr = per_rank(per_run_frame(df, roles=("tuned",)), "final_heldout_loss").sort_values(["method", "r"])
    if pr.empty:
        return None
    fig, ax = pyplot().subplots(figsize=(5.5, 3.8))
    _errorbars(ax, pr)
    for row in pr.itertuples():
        ax.annotate(f"{row.lr:g}", (row.r, row.mean), textcoords="offset points", xytext=(4, 4), fontsize=6)
    ax.set(xlabel="rank r", ylabel="final held-out loss (nats/token)", title="each at its own lr, searched per rank")
    log_ticks(ax, pr["r"])
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out / "tuned_loss_vs_rank.png")
    return ("final held-out loss vs rank, each scaling at its own lr searched per rank (seed mean +- sd; the pick "
            "beside each point)", "tuned_loss_vs_rank.png")


def draw_all(out: Path, df: pd.DataFrame, runs: pd.DataFrame, curves: pd.DataFrame, alpha: float, lrs, main_lr,
             ranks) -> list[tuple[str, str]]:
    """Every figure that has data: [(title, file name)]."""
    if curves.empty or not lrs:
        return []
    figs = [loss_curves(out, curves, lrs, ranks), final_loss_vs_rank(out, runs, lrs, ranks),
            gradnorm_vs_rank(out, runs, lrs, ranks), gradnorm_curves(out, curves, main_lr, ranks),
            scaling_vs_rank(out, df, alpha), tuned_loss_vs_rank(out, df)]
    return [f for f in figs if f is not None]
