"""The derived metrics the registry's checks decide on, from the per-run values.

Per-run frame ("runs"): one row per (lr, method, r, seed, metric) with its `value`, built in the sweep from the
jobs' results and in the report from results.csv (`per_run_frame`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bench.report_tools import params_of, with_params
from reproductions.rslora.settings import METHODS

# (per-run step-mean metric, name in the derived metric): the norms whose power of r is fitted
NORM_SLOPES = (("mean_param_grad_norm", "param_gradnorm"), ("mean_update_grad_norm", "update_gradnorm"),
               ("mean_update_step_norm", "update_step"))


def ols_slope(x, y) -> float:
    """Least-squares slope of y on x; NaN with fewer than two points or any non-finite y."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or not np.all(np.isfinite(y)):
        return math.nan
    return float(np.polyfit(x, y, 1)[0])


def sample_sd(v) -> float:
    """Sample sd (ddof 1); NaN with fewer than two values or any NaN (numpy's, not pandas' NaN-skipping one)."""
    v = np.asarray(v, float)
    return float(np.std(v, ddof=1)) if len(v) >= 2 else math.nan


def per_run_frame(df: pd.DataFrame, roles=("main", "second")) -> pd.DataFrame:
    """results.csv's per-run rows (method lora / rslora) of the lr_roles `roles` as the per-run frame: lr, method,
    r, seed, metric, value. The default (the runs at the lrs) never mixes in the search or the tuned runs, which
    `derive` would group with the main runs of the same lr. A tuned row's lr (a pick) is read from its info."""
    d = with_params(df[df["method"].isin(METHODS)], "r", "lr", "lr_role")
    d = d[d["lr_role"].isin(roles)]
    picked = d["info"].map(lambda s: params_of(s).get("lr")) if "info" in d else None
    d = d.assign(lr=d["lr"].where(d["lr"].notna(), picked))
    return d[["lr", "method", "r", "seed", "metric", "value"]]


def per_rank(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Seed mean, sd and count of `metric` per (lr, method, r), from the per-run frame.
    A NaN (diverged run) makes the mean NaN: divergence is never averaged away."""
    d = runs[runs["metric"] == metric]
    g = d.groupby(["lr", "method", "r"])["value"]
    out = g.agg(mean=lambda v: float(np.mean(v.to_numpy(float))), sd=sample_sd, n="size").reset_index()
    return out.sort_values(["lr", "method", "r"]).reset_index(drop=True)


def derive(runs: pd.DataFrame) -> list[tuple[str, float, dict, dict]]:
    """The metrics the verdict decides on, per learning rate: [(metric, value, params, info)] (info: what was
    measured along the way, such as the spread a ratio divides by; never part of a row's identity).

    runs: the per-run frame. Definitions:
    - {m}_final_loss_slope_vs_log2_rank: OLS slope of the seed-mean final held-out loss on log2(r)
      (nats per doubling of r; < 0: larger ranks end lower);
    - rslora_minus_lora_final_loss_top_rank: seed-mean final held-out loss, rsLoRA minus LoRA, at the
      largest rank; ..._over_spread divides it by the seed spread there, max(sd_lora, sd_rslora) (sample sd);
    - {m}_param_gradnorm_slope_vs_log_rank: slope of ln(seed-mean of the step-mean of sqrt(|dA|^2 + |dB|^2))
      on ln(r), i.e. the power of r that the adapters' gradient norm follows;
    - {m}_update_gradnorm_slope_vs_log_rank, {m}_update_step_slope_vs_log_rank: the same for update_grad and
      update_step (see reproductions.rslora.measure);
    - {m}_final_train_loss_slope_vs_log2_rank and rslora_minus_lora_final_train_loss_top_rank: the training
      loss (mean of the last 10% of steps) versions, reported next to the held-out ones.
    """
    out = []
    for lr in sorted(runs["lr"].unique()):
        d = runs[runs["lr"] == lr]
        ranks = sorted(d["r"].unique())
        p = {"lr": float(lr), "ranks": ",".join(str(int(r)) for r in ranks), "top_rank": int(ranks[-1])}
        out += _loss_metrics(d, ranks[-1], p) + _norm_metrics(d, p)
    return out


def _loss_metrics(d: pd.DataFrame, top, p: dict) -> list[tuple[str, float, dict, dict]]:
    """One lr's loss slopes on log2(r) and rsLoRA - LoRA at the top rank (held-out and train)."""
    out = []
    for loss in ("final_heldout_loss", "final_train_loss"):
        tag = "final_loss" if loss == "final_heldout_loss" else "final_train_loss"
        pr = per_rank(d, loss)
        for m in METHODS:
            pm = pr[pr["method"] == m]
            out.append((f"{m}_{tag}_slope_vs_log2_rank", ols_slope(np.log2(pm["r"]), pm["mean"]), p, {}))
        at_top = pr[pr["r"] == top].set_index("method")
        if not {"lora", "rslora"} <= set(at_top.index):
            continue
        diff = at_top.loc["rslora", "mean"] - at_top.loc["lora", "mean"]
        out.append((f"rslora_minus_lora_{tag}_top_rank", float(diff), p, {}))
        if tag == "final_loss":
            spread = max(at_top.loc["rslora", "sd"], at_top.loc["lora", "sd"])
            ratio = diff / spread if spread > 0 else math.nan
            out.append(("rslora_minus_lora_final_loss_top_rank_over_spread", float(ratio), p, {"spread": spread}))
    return out


def _norm_metrics(d: pd.DataFrame, p: dict) -> list[tuple[str, float, dict, dict]]:
    """One lr's powers of r followed by the step-mean norms (slope of ln(norm) on ln(r))."""
    out = []
    for norm, name in NORM_SLOPES:
        pr = per_rank(d, norm)
        for m in METHODS:
            pm = pr[pr["method"] == m]
            y = np.log(pm["mean"].where(pm["mean"] > 0))
            out.append((f"{m}_{name}_slope_vs_log_rank", ols_slope(np.log(pm["r"]), y), p, {}))
    return out


def cross_lr(runs: pd.DataFrame, main_lr: float) -> list[tuple[str, float, dict, dict]]:
    """Is rsLoRA's edge only a larger effective learning rate? At the largest rank: rsLoRA at the main lr minus
    the best LoRA over every lr run (seed means of the final held-out loss). Reported, not decided."""
    top = runs["r"].max()
    pr = per_rank(runs[runs["r"] == top], "final_heldout_loss")
    rs = pr[(pr["method"] == "rslora") & (pr["lr"] == main_lr)]["mean"]
    lo = pr[pr["method"] == "lora"]
    if rs.empty or lo.empty:
        return []
    best = lo.loc[lo["mean"].idxmin()] if lo["mean"].notna().all() else None
    value = float(rs.iloc[0] - best["mean"]) if best is not None else math.nan
    p = {"top_rank": int(top), "lr": float(main_lr), "lrs": ",".join(f"{x:g}" for x in sorted(runs["lr"].unique()))}
    info = {"best_lora_lr": float(best["lr"]) if best is not None else None}
    return [("rslora_main_lr_minus_best_lora_any_lr_top_rank", value, p, info)]
