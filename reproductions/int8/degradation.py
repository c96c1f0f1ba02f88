"""Issue 15's measures on the toy models (REPORTED rows: claims Q4 / Q5, metric names no current rule reads).

Per model and planted variant (params "planted": "none", "ln_2" = the old planting x8 on ln_2 only, "all_ln" =
every LayerNorm output that feeds a Linear planted at the paper's magnitudes, `plant_outliers_all_ln`):
- the census of the LayerNorm outputs that feed a Linear (`bench.numerics.ln_census`): rows lncensus_* (Q5);
- for FP32 and each int8 method (`DEG_METHODS`, LLM.int8() at threshold 6), on the held-out blocks: mean
  per-token KL(p_fp32 || p_int8) (deg_kl_per_token, nats/token) and the perplexity ratio from the same pass
  (deg_ppl_ratio_over_fp32); on the rung's knowledge task (test people, QA format): answer-token NLL and
  accuracy over the candidates, and their change vs FP32 (deg_answer_*) (`bench.numerics.degradation`); the KL
  ratios over absmax and over the unplanted model (deg_kl_ratio_*), so that a one-metric rule can read them;
- for "all_ln": the FP32 logit change of planting (plant_all_ln_fp32_max_abs_diff, must be ~0) and the planted
  dims' magnitudes (plant_all_ln_dim_*), the per-(LayerNorm, dim) factors in info (measured, not identity).
The reference of each variant is its own FP32 model (planting leaves the function unchanged to ~1e-5).
"""

from __future__ import annotations

import copy
import math

import torch

from bench.numerics.degradation import answer_scores, kl_to_reference, reference_logprobs, reference_nll
from bench.numerics.int8_linear import quantize_model
from bench.numerics.ln_census import ln_census
from bench.numerics.outliers import OUTLIER_MAGNITUDE, PLANT_TARGET_RMS, plant_outliers_all_ln
from bench.schema import Recorder

from .settings import PLANT_DIMS, PLANT_SCALE, THRESHOLD

DEG_METHODS = ("absmax", "zeropoint", "vectorwise", "llm_int8")   # issue 15's four quantizers
SOURCE = "ln_to_linear"          # census source: LayerNorm outputs that feed a Linear (not the residual stream)


def plant_params(variant: str) -> dict:
    """The settings of a planted variant (a row's identity)."""
    if variant == "ln_2":
        return {"planted": "ln_2", "dims": list(PLANT_DIMS), "scale": PLANT_SCALE}
    if variant == "all_ln":
        return {"planted": "all_ln", "dims": list(PLANT_DIMS), "target_rms": PLANT_TARGET_RMS}
    return {"planted": "none"}


@torch.no_grad()
def all_ln_variant(rec: Recorder, model, batches, kw: dict):
    """The all-LN planted copy of a GPT-2 model, calibrated on batches[0]; records its FP32 logit change (max
    over every held-out batch) with the factors' range in info."""
    planted, factors = plant_outliers_all_ln(copy.deepcopy(model), list(PLANT_DIMS), batches[0], PLANT_TARGET_RMS)
    diff = max(float((model(input_ids=b).logits - planted(input_ids=b).logits).abs().max()) for b in batches)
    info = {"factor_min": round(float(factors.min()), 4), "factor_max": round(float(factors.max()), 4)}
    rec.add("Q4", "plant_all_ln_fp32_max_abs_diff", diff, unit="logit", params=plant_params("all_ln"), info=info, **kw)
    return planted


def lncensus_rows(rec: Recorder, variant: str, m, batches, kw: dict) -> None:
    """lncensus_* rows: one set per LayerNorm that feeds a Linear, and the model-level summary."""
    c, states = ln_census(m, batches)
    p = {**plant_params(variant), "source": SOURCE}
    for k, v in c.summary().items():
        unit = "share" if "share" in k or "affected" in k else ("count" if k.startswith("n_") else "value")
        rec.add("Q5", f"lncensus_{k}", v, unit=unit, params={**p, "n_layers": len(c.names)},
                info={"outlier_dims": c.outlier_dims}, **kw)
    for i, (name, st) in enumerate(zip(c.names, c.layers)):
        lp = {**p, "layer": name, "layer_index": i}
        info = {"top_dims": st["top_dims"]}
        rec.add("Q5", "lncensus_layer_share_positions_ge6", st["share_positions_ge6"], unit="share", params=lp, **kw)
        rec.add("Q5", "lncensus_layer_kurtosis", st["kurtosis"], unit="excess kurtosis", params=lp, info=info, **kw)
        for j, t in enumerate(st["top_abs"]):
            rec.add("Q5", f"lncensus_layer_top{j + 1}_abs", t, unit="value", params=lp, info=info, **kw)
    if variant == "all_ln":
        planted_magnitude_rows(rec, states, p, kw)


def planted_magnitude_rows(rec: Recorder, states: list[torch.Tensor], p: dict, kw: dict) -> None:
    """What the all-LN planting reached: max and median |x| of the planted dims over every LayerNorm and
    position, and the share of those values with |x| >= 6."""
    a = torch.cat([X[:, list(PLANT_DIMS)].abs().reshape(-1) for X in states])
    rec.add("Q4", "plant_all_ln_dim_max_abs", float(a.max()), unit="value", params=p, **kw)
    rec.add("Q4", "plant_all_ln_dim_median_abs", float(a.median()), unit="value", params=p, **kw)
    rec.add("Q4", "plant_all_ln_dim_share_ge6", float((a >= OUTLIER_MAGNITUDE).float().mean()), unit="share",
            params=p, **kw)


def degradation_rows(rec: Recorder, variant: str, m, batches, task, task_name: str | None, kw: dict) -> dict:
    """deg_* rows (Q4) for FP32 and each of DEG_METHODS: KL and perplexity ratio on the held-out blocks; answer
    NLL and accuracy on `task` (a knowledge-task split; None: a model without the ladder world's tokenizer).
    -> {method: KL} for the ratio rows."""
    p = {**plant_params(variant), "threshold": THRESHOLD}
    ref = reference_logprobs(m, batches)
    ref_nll = reference_nll(ref, batches)
    tk = {**kw, "data": task_name}
    base = answer_scores(m, task) if task is not None else None
    if base is not None:
        rec.add("Q4", "deg_answer_nll", base["answer_nll"], unit="nats", method="fp32", params=p, **tk)
        rec.add("Q4", "deg_answer_accuracy", base["accuracy"], unit="accuracy", method="fp32", params=p, **tk)
    kls = {}
    for meth in DEG_METHODS:
        q = quantize_model(copy.deepcopy(m), method=meth, threshold=THRESHOLD)
        h = kl_to_reference(ref, q, batches)
        kls[meth] = h["kl_per_token"]
        mk = dict(method=meth, params=p)
        rec.add("Q4", "deg_kl_per_token", h["kl_per_token"], unit="nats/token", **mk, **kw)
        rec.add("Q4", "deg_ppl_ratio_over_fp32", math.exp(h["nll_per_token"] - ref_nll), unit="ratio", **mk, **kw)
        if base is None:
            continue
        a = answer_scores(q, task)
        rec.add("Q4", "deg_answer_nll", a["answer_nll"], unit="nats", **mk, **tk)
        rec.add("Q4", "deg_answer_nll_increase", a["answer_nll"] - base["answer_nll"], unit="nats", **mk, **tk)
        rec.add("Q4", "deg_answer_accuracy", a["accuracy"], unit="accuracy", **mk, **tk)
        rec.add("Q4", "deg_answer_accuracy_drop", base["accuracy"] - a["accuracy"], unit="accuracy", **mk, **tk)
    return kls


def kl_ratio_rows(rec: Recorder, kls: dict, kw: dict) -> None:
    """Ratios a one-metric rule can read: each method's KL over absmax's on the same model and variant
    (deg_kl_ratio_over_absmax: what the decomposition keeps), and each planted variant's KL over the unplanted
    model's for the same method (deg_kl_ratio_over_unplanted: what planting did to that quantizer)."""
    for variant, by_method in kls.items():
        for meth, kl in by_method.items():
            mk = dict(method=meth, params={**plant_params(variant), "threshold": THRESHOLD}, unit="ratio", **kw)
            if meth != "absmax":
                rec.add("Q4", "deg_kl_ratio_over_absmax", kl / by_method["absmax"], **mk)
            if variant != "none" and "none" in kls:
                rec.add("Q4", "deg_kl_ratio_over_unplanted", kl / kls["none"][meth], **mk)


def variant_rows(rec: Recorder, variants: list[tuple[str, object]], batches, task, task_name, kw: dict) -> None:
    """Census and degradation rows for every (planted variant, model), then the KL ratio rows."""
    kls = {}
    for variant, m in variants:
        lncensus_rows(rec, variant, m, batches, kw)
        kls[variant] = degradation_rows(rec, variant, m, batches, task, task_name, kw)
    kl_ratio_rows(rec, kls, kw)
