"""The int8 report's issue-15 sections : degradation per quantizer and rung (KL, answer NLL),
the all-LN planting, the census of LayerNorm outputs that feed a Linear, and MiniLM's embedding cosine."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bench.report_tools import md_table, num, params_of, pyplot, save_figure, select, value, with_params

from .degradation import DEG_METHODS

VARIANT_ORDER = ("none", "ln_2", "all_ln")


def _order(df: pd.DataFrame) -> list[tuple[str, str]]:
    """(model, planted) pairs in run order, variants as VARIANT_ORDER."""
    seen = list(dict.fromkeys(zip(df["model"], df["planted"])))
    return sorted(seen, key=lambda mp: ([m for m, _ in seen].index(mp[0]), VARIANT_ORDER.index(mp[1])
                                        if mp[1] in VARIANT_ORDER else 9))


def degradation_section(df: pd.DataFrame) -> list[str]:
    """Two tables per (rung, planted variant): held-out KL and ppl ratio; answer NLL change and accuracy."""
    deg = with_params(df[df["metric"].str.startswith("deg_") & ~df["metric"].str.startswith("deg_emb")], "planted")
    if deg.empty:
        return []
    kl_rows, ans_rows = [], []
    for model, planted in _order(deg):
        g = deg[(deg["model"] == model) & (deg["planted"] == planted)]
        v = lambda metric, m: value(g, metric, method=m)
        kl_rows.append([model, planted] + [f"{num(v('deg_kl_per_token', m), 3)} (x{v('deg_ppl_ratio_over_fp32', m):.4f})"
                                           for m in DEG_METHODS] + [num(v("deg_kl_ratio_over_absmax", "llm_int8"), 3)])
        if not select(g, "deg_answer_nll").empty:
            ans_rows.append([model, planted, f"{v('deg_answer_accuracy', 'fp32'):.3f} / {v('deg_answer_nll', 'fp32'):.3f}"]
                            + [f"{v('deg_answer_nll_increase', m):+.4f} / {v('deg_answer_accuracy', m):.3f}"
                               for m in DEG_METHODS])
    L = ["## Q4: int8 degradation per quantizer and rung (the all_ln rows decide Q4's toy parts)", "",
         "Held-out blocks: mean per-token KL(p_fp32 || p_int8) of the next-token distributions in nats/token, and in "
         "brackets the perplexity ratio over FP32 from the same pass. Planted: `none`; `ln_2` (the old planting, dims "
         "x8 on the MLP inputs only); `all_ln` (every LayerNorm output that feeds a Linear, all layers, planted dims at "
         "RMS 20, see below). Each variant is compared with its own FP32 model. LLM.int8() at threshold 6.", "",
         md_table(["model", "planted", *DEG_METHODS, "KL llm_int8 / absmax"], kl_rows), ""]
    if ans_rows:
        L += ["Knowledge task (QA prompts about test people, all attributes; answer = one token): FP32 accuracy / "
              "answer NLL (nats), then per quantizer the answer-NLL change vs FP32 (nats) / accuracy.", "",
              md_table(["model", "planted", "fp32 acc / NLL", *DEG_METHODS], ans_rows), "",
              "For scale: Dettmers et al. 2022 Table 1 at 6.7B, absmax int8 raised C4 perplexity 13.30 -> 14.59, "
              "ln(14.59/13.30) = 0.093 nats/token of NLL; LLM.int8() 13.24 (-0.005 nats).", ""]
    return L


def planting_section(df: pd.DataFrame) -> list[str]:
    """What the all-LN planting did per rung: FP32 change, factors, the planted dims' magnitudes."""
    pl = select(df, "plant_all_ln_fp32_max_abs_diff")
    if pl.empty:
        return []
    rows = []
    for r in pl.itertuples():
        info = json.loads(r.info) if isinstance(r.info, str) and r.info else {}
        v = lambda metric: value(df, metric, model=r.model)
        rows.append([r.model, f"{r.value:.2e}", f"{info.get('factor_min', float('nan')):.1f}-"
                     f"{info.get('factor_max', float('nan')):.1f}", num(v("plant_all_ln_dim_median_abs"), 3),
                     num(v("plant_all_ln_dim_max_abs"), 3), f"{100 * v('plant_all_ln_dim_share_ge6'):.0f}%"])
    p = params_of(pl["params"].iloc[0])
    return ["### All-LN planting (the paper's magnitudes)", "",
            f"Dims {p.get('dims')} of ln_1 (-> attn.c_attn) and ln_2 (-> mlp.c_fc) in every block, each (LayerNorm, "
            f"dim) scaled to RMS {p.get('target_rms')} on the first held-out batch and compensated in the Linear's "
            "input rows (Dettmers et al. 2022 Sec. 4.1: outliers of up to ~60 in a few systematic dims).", "",
            md_table(["model", "FP32 logit max abs change", "factors", "planted dims: median abs(x)",
                      "max abs(x)", "share of values >= 6"], rows), ""]


def census_section(df: pd.DataFrame, out_dir: Path) -> list[str]:
    """Model-level census per (model, planted) and the per-layer kurtosis figure."""
    cen = with_params(df[df["metric"].str.startswith("lncensus_") & ~df["metric"].str.startswith("lncensus_layer_")],
                      "planted", "n_layers")
    if cen.empty:
        return []
    rows = []
    for model, planted in _order(cen):
        g = cen[(cen["model"] == model) & (cen["planted"] == planted)]
        v = lambda k: value(g, f"lncensus_{k}")
        rows.append([model, planted, int(g["n_layers"].iloc[0]), f"{100 * v('share_layers_ge6'):.0f}%",
                     f"{100 * v('share_positions_ge6'):.1f}%", f"{100 * v('layers_affected'):.0f}%",
                     f"{100 * v('positions_affected'):.1f}%", int(v("n_outlier_dims")), num(v("max_abs"), 3),
                     num(v("kurtosis_median"), 3), num(v("kurtosis_max"), 3)])
    kurtosis_figure(df, out_dir / "lncensus_kurtosis.png")
    return ["## Q5: census of the LayerNorm outputs that feed a Linear (reported, not judged)", "",
            "What int8 layers quantize (not the residual stream). |x| >= 6 anywhere in a LayerNorm's output (share of "
            "LayerNorms, of positions); the paper's systematic outliers (a dim with |x| >= 6 in >= 25% of layers and "
            ">= 6% of positions: layers / positions affected, Fig. 3); excess kurtosis of all values per LayerNorm "
            "(0 for a Gaussian).", "",
            md_table(["model", "planted", "LayerNorms", "with abs(x) >= 6", "positions with abs(x) >= 6", "layers affected",
                      "positions affected", "outlier dims", "max abs", "kurtosis median", "kurtosis max"], rows), "",
            "![kurtosis per layer](lncensus_kurtosis.png)", ""]


def kurtosis_figure(df: pd.DataFrame, path: Path) -> None:
    """Excess kurtosis per LayerNorm (x: relative depth) per model, one panel per planted variant present."""
    k = with_params(select(df, "lncensus_layer_kurtosis"), "planted", "layer_index")
    variants = [v for v in VARIANT_ORDER if v in set(k["planted"])]
    fig, axes = pyplot().subplots(1, len(variants), figsize=(4.2 * len(variants), 3.6), sharey=True, squeeze=False)
    for ax, variant in zip(axes[0], variants):
        for model, g in k[k["planted"] == variant].groupby("model", sort=False):
            g = g.sort_values("layer_index")
            x = g["layer_index"] / max(len(g) - 1, 1)
            ax.plot(x, g["value"], marker="o", ms=3, label=model, ls="--" if g["scale"].iloc[0] == "real" else "-")
        ax.set_yscale("symlog", linthresh=1.0)
        ax.axhline(0.0, color="k", lw=0.6)
        ax.set(xlabel="relative depth (LayerNorm order)", title=f"planted: {variant}")
    axes[0][0].set_ylabel("excess kurtosis of LayerNorm output")
    seen = {}                                   # every model once, whichever panel drew it (MiniLM: "none" only)
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    axes[0][-1].legend(list(seen.values()), list(seen), fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle("Heavy tails of the LayerNorm outputs that feed a Linear, per layer")
    fig.tight_layout()
    save_figure(fig, path)


def minilm_section(df: pd.DataFrame, meta: dict) -> list[str]:
    """MiniLM: embedding cosine to FP32 per quantizer (its census sits in the census table)."""
    cos = select(df, "deg_emb_cos_to_fp32")
    if cos.empty:
        return [f"MiniLM: {meta['minilm']}", ""] if meta.get("minilm") else []
    rows = [[m, f"{value(cos, 'deg_emb_cos_to_fp32', method=m):.5f}",
             f"{value(df, 'deg_emb_cos_to_fp32_min', method=m):.5f}"] for m in DEG_METHODS]
    return ["### MiniLM (all-MiniLM-L6-v2, pretrained elsewhere): sentence embeddings under int8", "",
            f"{cos['data'].iloc[0]}: cosine of each snippet's mean-pooled embedding to FP32's. An encoder has no "
            "next-token distribution, so no KL; its census is in the table above (scale real).", "",
            md_table(["quantizer", "mean cosine", "min cosine"], rows), ""]
