"""The decoder group's rows (results.csv) and its int8.csv table.

Per-window rows (`chunk_rows`, claim "-"): NLL and KL of each main quantizer per text window, the replicates
of the decoder track's Effects. Claims: absmax and zero-point rows sit under Q2 (with their paired
difference), vector-wise, LLM.int8(), the threshold sweep and bitsandbytes under Q4, the census and the kept-dimension variants under Q5; the fp32
reference under "-". Every row's `info` carries the 95% interval over chunks where there is one, and the note
that the weights were dequantized from 4 bits.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.schema import Recorder
from reproductions.decoder.census import input_of
from reproductions.decoder.evaluate import mean_ci
from reproductions.decoder.quant import targets

WEIGHTS = "dequantized from a 4-bit GGUF"


def _add(rec: Recorder, common: dict, claim: str, metric: str, value, unit: str, params: dict | None = None,
         ci=None, info: dict | None = None) -> None:
    info = {**(info or {}), "weights": WEIGHTS, **({"ci95": [round(float(ci[0]), 8), round(float(ci[1]), 8)]}
                                                  if ci is not None else {})}
    rec.add(claim, metric, value, unit=unit, model=common["model"], data=common["data"], scale=common["scale"],
            params={**common["params_base"], **(params or {})}, info=info)


def claim_of(name: str) -> str:
    if name in ("absmax", "zeropoint"):
        return "Q2"
    return "Q5" if name.startswith("keep_") else "Q4"


def kept_share(lm, dims: dict[str, list[int]]) -> float:
    """Mean over the quantized Linears of the share of input columns a keep_* variant holds in fp16."""
    return float(np.mean([len(dims.get(input_of(n)[1], [])) / m.in_features for n, m in targets(lm)]))


def quality_rows(rec: Recorder, scores: dict, params_of: dict, shares: dict, dims: dict, lm, common: dict):
    """Perplexity, its ratio to fp32 and KL per token for every variant; Q2's paired differences. -> int8.csv."""
    nll32 = scores["fp32"]["nll"]
    m, lo, hi = mean_ci(nll32)
    _add(rec, common, "-", "ppl", np.exp(m), "ppl", {"quant": "fp32"}, (np.exp(lo), np.exp(hi)))
    table = [{"variant": "fp32", "quant": "fp32", "threshold": np.nan, "ppl": np.exp(m), "ppl_lo": np.exp(lo),
              "ppl_hi": np.exp(hi), "ppl_ratio": 1.0, "ratio_lo": 1.0, "ratio_hi": 1.0, "kl": 0.0, "kl_lo": 0.0,
              "kl_hi": 0.0, "fp_column_share": 1.0}]
    for name, params in params_of.items():
        sc, claim = scores[name], claim_of(name)
        pm, plo, phi = mean_ci(sc["nll"])
        rm, rlo, rhi = mean_ci(sc["nll"] - nll32)
        km, klo, khi = mean_ci(sc["kl"])
        share = kept_share(lm, dims) if name.startswith("keep_") else shares[name]
        _add(rec, common, claim, "ppl", np.exp(pm), "ppl", params, (np.exp(plo), np.exp(phi)))
        _add(rec, common, claim, "ppl_ratio_over_fp32", np.exp(rm), "ratio", params, (np.exp(rlo), np.exp(rhi)))
        _add(rec, common, claim, "kl_per_token", km, "nats", params, (klo, khi))
        if share == share:
            _add(rec, common, claim, "fp_column_share", share, "share", params)
        table.append({"variant": name, "quant": params["quant"], "threshold": np.nan if params.get("threshold") is None else params["threshold"],
                      "ppl": np.exp(pm), "ppl_lo": np.exp(plo), "ppl_hi": np.exp(phi), "ppl_ratio": np.exp(rm),
                      "ratio_lo": np.exp(rlo), "ratio_hi": np.exp(rhi), "kl": km, "kl_lo": klo, "kl_hi": khi,
                      "fp_column_share": share})
    if {"absmax", "zeropoint"} <= set(scores):
        for key, unit in (("kl", "nats"), ("nll", "nats")):
            d = scores["absmax"][key] - scores["zeropoint"][key]
            m, lo, hi = mean_ci(d)
            _add(rec, common, "Q2", f"q2_{key}_absmax_minus_zeropoint", m, unit, ci=(lo, hi),
                 info={"note": "paired over chunks; < 0: absmax damages less than zero-point"})
    return pd.DataFrame(table)


CHUNK_VARIANTS = ("fp32", "absmax", "zeropoint", "vectorwise", "llm_int8", "bnb_llm_int8")


def chunk_rows(rec: Recorder, scores: dict, params_of: dict, common: dict) -> None:
    """Per text window: NLL (nats/token) of fp32 and each main quantizer, and KL(fp32 || variant) (nats/token),
    under claim "-" with params.chunk: the replicates of the decoder track's Effects (bench.claims.decoder)."""
    for name in CHUNK_VARIANTS:
        if name not in scores:
            continue
        params = params_of.get(name, {"quant": "fp32"})
        for c, (nll, kl) in enumerate(zip(scores[name]["nll"], scores[name]["kl"])):
            p = {**params, "chunk": c}
            _add(rec, common, "-", "chunk_nll", float(nll), "nats", p)
            if name != "fp32":
                _add(rec, common, "-", "chunk_kl", float(kl), "nats", p)


def census_rows(rec: Recorder, summary: dict, common: dict) -> None:
    """Per Linear input kind: Dettmers' outlier dimensions and how much of the model they touch."""
    units = {"n_outlier_dims": "dims", "layers_affected": "share", "positions_affected": "share",
             "max_abs": "value", "share_positions_ge6": "share", "share_layers_ge6": "share"}
    for kind, sm in summary.items():
        vals = {**sm, "n_outlier_dims": len(sm["outlier_dims"])}
        for key, unit in units.items():
            _add(rec, common, "Q5", f"q5_{key}", vals[key], unit, {"input": kind},
                 info={"outlier_dims": sm["outlier_dims"]} if key == "n_outlier_dims" else None)


def parity_rows(rec: Recorder, parity: pd.DataFrame, scores: dict, common: dict) -> None:
    """Our LLM.int8() vs bitsandbytes': per-layer error ratio (median, max), largest output difference, shared
    outlier columns, and the model-level KL difference (paired over chunks)."""
    ratio = parity["rel_err_ours"] / parity["rel_err_bnb"].clip(lower=1e-30)
    for agg, v in (("median", ratio.median()), ("max", ratio.max()), ("min", ratio.min())):
        _add(rec, common, "Q4", "q4_bnb_rel_err_ratio_ours_over_bnb", v, "ratio", {"agg": agg})
    _add(rec, common, "Q4", "q4_bnb_rel_diff_ours_bnb_max", parity["rel_diff_ours_bnb"].max(), "ratio")
    _add(rec, common, "Q4", "q4_bnb_outlier_cols_match_share", parity["outlier_cols_match"].mean(), "share")
    if "bnb_llm_int8" in scores and "llm_int8" in scores:
        m, lo, hi = mean_ci(scores["llm_int8"]["kl"] - scores["bnb_llm_int8"]["kl"])
        _add(rec, common, "Q4", "q4_kl_ours_minus_bnb", m, "nats", ci=(lo, hi), info={"note": "paired over chunks"})
