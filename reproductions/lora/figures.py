"""The LoRA group's PNGs, drawn from numbers the report has already picked from the stored CSVs."""

from __future__ import annotations

from pathlib import Path

from bench.report_tools import log_ticks, pyplot, save_figure
from bench.schema import param

MiB = 2**20
MEMORY_PARTS = ("weights", "gradients", "optimizer", "activations")


def ratio_vs_d(ratio, ranks, path: Path) -> None:
    """L2: LoRA params / d^2 of one d x d matrix against d, one line per r (log-log)."""
    fig, ax = pyplot().subplots(figsize=(5.5, 4))
    for r in ranks:
        sub = ratio[param(ratio, "r") == r]
        ax.plot(param(sub, "d").astype(float), sub["value"], "o-", label=f"r={r}", ms=3)
    ax.set(xscale="log", yscale="log", xlabel="d (matrix is d x d)", ylabel="LoRA params / d^2 (= 2r/d)",
           title="L2: LoRA's share of one matrix falls as d grows")
    ax.legend(fontsize=7)
    save_figure(fig, path)


def memory_parts(bars: dict[str, dict], rung: str, path: Path) -> None:
    """Measured training memory, stacked by part, one bar per variant (bars: label -> part -> bytes)."""
    fig, ax = pyplot().subplots(figsize=(7, 3.8))
    names = list(bars)
    bottom = [0.0] * len(names)
    for part in MEMORY_PARTS:
        vals = [bars[n][part] / MiB for n in names]
        ax.bar(names, vals, bottom=bottom, label=part)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set(ylabel="MiB", title=f"training memory by part, measured ({rung})")
    ax.tick_params(axis="x", rotation=45, labelsize=7)
    ax.legend(fontsize=7)
    save_figure(fig, path)


def l4_rank(ranks, means, stds, full_mean: float, chance: float, zero_shot: float, mems, rung: str,
            path: Path) -> None:
    """L4: LoRA accuracy (mean +- std over seeds) vs r (log axis) with full FT, the zero-shot model and chance;
    measured memory on a twin axis that starts at zero."""
    fig, ax = pyplot().subplots(figsize=(6, 4))
    ax.errorbar(ranks, means, yerr=stds, fmt="o-", capsize=3, label="LoRA (mean +- sample sd over seeds)")
    ax.axhline(full_mean, color="k", ls="--", lw=1, label="full FT")
    ax.axhline(zero_shot, color="tab:green", ls="-.", lw=1, label="zero-shot (no fine-tuning)")
    ax.axhline(chance, color="gray", ls=":", lw=1, label="chance")
    ax.set(xlabel="rank r (log scale)", ylabel="test accuracy", title=f"L4: quality and memory vs r ({rung})")
    log_ticks(ax, ranks)
    ax2 = ax.twinx()
    ax2.plot(ranks, [m / MiB for m in mems], "s--", color="tab:red", ms=3, label="training memory (MiB)")
    ax2.set_ylabel("training memory, measured (MiB)", color="tab:red")
    ax2.set_ylim(0, 1.15 * max([m / MiB for m in mems if m == m] or [1.0]))
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="lower right")
    save_figure(fig, path)


def l6_rank(ranks, gaps, k: int, energy, energy_random, energy_null, path: Path) -> None:
    """L6: the planted task's gap vs r (left); the full-FT update's energy in its top r directions vs the
    permuted-answer null's and a Gaussian matrix's (right, when measured)."""
    fig, axes = pyplot().subplots(1, 2, figsize=(10, 3.8))
    axes[0].plot(ranks, gaps, "o-")
    axes[0].axvline(k, color="gray", ls=":", label=f"planted k={k}")
    axes[0].axhline(0, color="k", lw=0.8)
    axes[0].set(xlabel="LoRA rank r", ylabel="gap to full FT / KL(base)", title="planted rank-k update")
    log_ticks(axes[0], ranks)
    axes[0].legend(fontsize=7)
    if not energy.empty:
        axes[1].plot([int(x) for x in param(energy, "r")], energy["value"], "o-",
                     label="full-FT update dW (knowledge task)")
        if not energy_null.empty:
            axes[1].plot([int(x) for x in param(energy_null, "r")], energy_null["value"], "^-",
                         label="full FT on permuted answers (null)")
        axes[1].plot([int(x) for x in param(energy_random, "r")], energy_random["value"], "s--",
                     label="Gaussian matrix, same shape")
        axes[1].set(xlabel="top r singular directions", ylabel="share of energy (sum s_i^2)",
                    title="spectrum of dW = W_ft - W_0 (c_attn)")
        log_ticks(axes[1], [int(x) for x in param(energy, "r")])
        axes[1].legend(fontsize=7)
    save_figure(fig, path)
