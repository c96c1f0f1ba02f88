"""The int8 report's Q5 natural-outlier section: the census along pretraining per rung (BOS series), the rows the
rule reads, the KL of absmax and LLM.int8() at the end beside the ladder's (no BOS), and the figure."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from matplotlib.ticker import NullFormatter

from bench.report_tools import md_table, num, pyplot, save_figure, value, with_params

from .natural import KL_METHODS, MEASURE

COLS = ("kurtosis_median", "kurtosis_median_excl_bos", "kurtosis_max", "max_abs", "share_layers_ge6",
        "layers_affected", "positions_affected", "n_outlier_dims")


def series_frame(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, step): tokens, held-out ppl, training loss and the census columns COLS."""
    nat = with_params(df[df["metric"].str.startswith("natural_") & df["params"].str.contains('"step"')], "step", "tokens")
    if nat.empty:
        return nat
    nat = nat.assign(col=nat["metric"].str.replace("natural_lncensus_", "").str.replace("natural_", ""))
    wide = nat.pivot_table(index=["model", "step", "tokens"], columns="col", values="value", sort=False).reset_index()
    order = list(dict.fromkeys(nat["model"]))
    return wide.sort_values(["model", "step"], key=lambda s: s.map(order.index) if s.name == "model" else s)


def natural_section(df: pd.DataFrame, out_dir: Path, tm: pd.DataFrame) -> list[str]:
    w = series_frame(df)
    if w.empty:
        return []
    rows = [[r.model, f"{int(r.tokens):,}", num(r.heldout_ppl, 4), num(r.train_loss, 3) if r.step else "-", num(r.kurtosis_median, 3),
             num(r.kurtosis_median_excl_bos, 3), num(r.kurtosis_max, 3), num(r.max_abs, 3),
             f"{100 * r.share_layers_ge6:.0f}%", f"{100 * r.layers_affected:.0f}%", f"{100 * r.positions_affected:.1f}%",
             int(r.n_outlier_dims)] for r in w.itertuples()]
    kl_rows = []
    for model in dict.fromkeys(w["model"]):
        rung = model.removesuffix("+bos")
        no_bos = [value(df, "deg_kl_per_token", model=rung, method=m, **{"params.planted": "none"}) for m in KL_METHODS]
        kl_rows.append([rung, *[num(value(df, "natural_kl_per_token", model=model, method=m), 3) for m in KL_METHODS],
                        *[num(v, 3) for v in no_bos],
                        num(value(df, "lncensus_kurtosis_median", model=rung, **{"params.planted": "none"}), 3)])
    rho = lambda metric: num(value(df, metric), 3)
    wall = tm[tm["metric"] == "natural_pretrain_wall_s"] if "metric" in tm else tm
    walls = ", ".join(f"{m.removesuffix('+bos')} {v / 60:.1f} min" for m, v in zip(wall["model"], wall["value"])) or "-"
    mini = df[df["metric"].eq("lncensus_kurtosis_median") & df["scale"].eq("real")]
    minilm = (f"has a median of {num(mini['value'].iloc[0], 3)} (max "
              f"{num(value(df, 'lncensus_kurtosis_max', model=mini['model'].iloc[0]), 3)})" if len(mini) else "was not run")
    last = w.groupby("model", sort=False).tail(1)
    ladder_k = [value(df, "lncensus_kurtosis_median", model=m.removesuffix("+bos"), **{"params.planted": "none"})
                for m in last["model"]]
    bos_gap = max(abs(a - b) for a, b in zip(last[MEASURE], ladder_k))
    kl_max = max(value(df, "natural_kl_per_token", model=m, method="absmax") for m in last["model"])
    last_ge6 = ", ".join(f"{m.removesuffix('+bos')} {100 * v:.0f}%" for m, v in zip(last["model"], last["share_layers_ge6"]))
    series_figure(w, out_dir / "natural_outliers.png")
    return ["## Q5: natural outliers along pretraining (BOS series)", "",
            "Each rung of the ladder pretrained again exactly as the ladder (init, tokens, lr, batch order) but with "
            "<bos> opening every sequence, a token attention can park on (Bondarenko et al. 2023). At 1/16, 1/8, "
            "1/4, 1/2 and all of the steps: held-out perplexity and the census of the LayerNorm outputs that feed a "
            f"Linear, on BOS-opened held-out blocks. The rule reads `{MEASURE}` (median over those LayerNorms of the "
            "excess kurtosis of their outputs); 'excl. BOS' drops position 0 (a sink token can carry large "
            "activations of its own). Tokens 0: the initialised model (reported, not judged). Training loss: mean of "
            "the last 20 steps. Layers affected / positions affected / outlier dims: Dettmers et al.'s systematic "
            "outliers, a feature dim with abs(x) >= 6 in >= 25% of the LayerNorms and >= 6% of the positions.", "",
            md_table(["model", "tokens", "held-out ppl", "train loss", "kurtosis median", "... excl. BOS",
                      "kurtosis max", "max abs", "LNs with abs(x) >= 6", "layers affected", "positions affected",
                      "outlier dims"], rows), "",
            f"For scale: the largest `{MEASURE}` in the series is {num(w[MEASURE].max(), 3)} (a Gaussian: 0; a uniform: "
            f"-1.2); MiniLM, pretrained elsewhere, {minilm}. LayerNorm outputs with any abs(x) >= 6 at the last "
            f"checkpoints: {last_ge6}; systematic outlier dims (Dettmers' criteria) found: {int(w['n_outlier_dims'].max())}."
            + (" So no outlier feature formed: the tails thicken from flatter than a Gaussian towards a Gaussian, "
               "far from the heavy tails of a model with outlier features, and a trend of this measure alone says "
               "nothing about outliers (hence the rule's precondition that an outlier dim forms)."
               if w[MEASURE].max() < 1.0 and w["n_outlier_dims"].max() == 0 else ""), "",
            f"Spearman's rho of `{MEASURE}` with held-out perplexity over every (rung, checkpoint): "
            f"{rho('natural_spearman_kurtosis_vs_ppl')} (rule: <= -0.5); with parameters at the last checkpoint: "
            f"{rho('natural_spearman_kurtosis_vs_params')} over {rho('natural_n_rungs')} rungs (rule: >= 0.9, "
            "needs 5 rungs).", "",
            "KL(FP32 || int8) per token on the held-out blocks at the end of the series, beside the ladder's own rung "
            "(no BOS, unplanted, its plain held-out blocks) and that rung's median kurtosis. At the last checkpoint "
            f"the BOS series' median kurtosis is within {num(bos_gap, 2)} of the ladder's own rung: the BOS token "
            f"changed little. Absmax's KL stays <= {num(kl_max, 2)} nats/token, far below the 0.039 of Q4's "
            "precondition: nothing here hurts plain int8.", "",
            md_table(["rung", *[f"{m} KL (BOS)" for m in KL_METHODS], *[f"{m} KL (ladder)" for m in KL_METHODS],
                      "kurtosis median (ladder)"], kl_rows), "",
            "![natural outliers along pretraining](natural_outliers.png)", "",
            f"Pretraining wall time per series rung (one-thread processes, `natural_workers` at once; measured when it was built and cached afterwards, so a rerun's wall time in "
            f"meta.json does not include it): {walls}.", ""]


def series_figure(w: pd.DataFrame, path: Path) -> None:
    """Median kurtosis vs tokens, median kurtosis vs held-out perplexity (Dettmers Fig. 3b's axis), max |x| vs
    tokens; one line per rung."""
    w = w[w["step"] > 0]                              # log axes; the initialised model is in the table
    fig, axes = pyplot().subplots(1, 3, figsize=(13, 3.8))
    for model, g in w.groupby("model", sort=False):
        axes[0].plot(g["tokens"], g["kurtosis_median"], marker="o", ms=3, label=model)
        axes[1].plot(g["heldout_ppl"], g["kurtosis_median"], marker="o", ms=3, label=model)
        axes[2].plot(g["tokens"], g["max_abs"], marker="o", ms=3, label=model)
    axes[0].set(xscale="log", xlabel="pretraining tokens", ylabel="median excess kurtosis (LN -> Linear)",
                title="LayerNorm-output kurtosis along pretraining")
    axes[1].set(xscale="log", xlabel="held-out perplexity (log)", ylabel="median excess kurtosis",
                title="against perplexity (cf. Dettmers Fig. 3b)")
    ppl_ticks = [t for t in (1.5, 2, 3, 5, 10, 20, 50) if w["heldout_ppl"].min() / 1.2 <= t <= w["heldout_ppl"].max() * 1.2]
    axes[1].set_xticks(ppl_ticks, [f"{t:g}" for t in ppl_ticks])
    axes[1].xaxis.set_minor_formatter(NullFormatter())
    axes[1].invert_xaxis()
    for ax in axes[:2]:
        ax.axhline(0.0, color="k", lw=0.6, ls=":")     # a Gaussian's excess kurtosis
    axes[2].axhline(6.0, color="k", lw=0.6, ls=":")
    axes[2].set_ylim(0, max(7.0, float(w["max_abs"].max()) * 1.1))
    axes[2].set(xscale="log", xlabel="pretraining tokens", ylabel="max abs(x) over LN outputs", title="largest value (6: the paper's outlier)")
    axes[2].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    save_figure(fig, path)
