"""The scale group's tables, as frames (reproductions.scale.report writes them): per-cell means, per-run rows,
chance levels, the adaptation precondition, P3's gap; and the number formats the report and figures share."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bench.claims import ADAPT_POINTS, ADAPT_SE
from bench.report_tools import MISSING, finite, num, params_of, select, with_params
from bench.stats import diff_interval
from reproductions.scale.derive import runs_frame, sample_sd
from reproductions.scale.settings import CLASSIFICATION, METRIC, TASKS, ZERO_SHOT

PLACES = 3          # decimals of accuracies, BLEU and losses (0-1 metrics: 400 test items resolve 0.0025)
RUN_METRICS = ("steps_used", "best_step", "stopped_early", "still_improving_at_cap", "final_train_loss",
               "val_loss_best", "diverged")


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """rung x task x method: seed mean, sd and count of the task's metric, the stored % per task and the test
    items (n_test: a proportion's binomial error)."""
    runs = runs_frame(df)
    main = runs[runs["phase"].isin(["main", "zeroshot"]) & runs["task"].isin(TASKS)]
    rows = []
    for (model, task, method), g in main.groupby(["model", "task", "method"], sort=False):
        v = g[g["metric"] == METRIC[task]]["value"]
        pct = g[g["metric"] == "stored_pct"]["value"]
        untrained = 0.0 if method in (ZERO_SHOT, "frozen") else math.nan    # stores nothing
        n_test = pd.to_numeric(g["n_test"], errors="coerce").dropna()
        rows.append({"model": model, "rung_params": as_int(g["rung_params"].iloc[0]), "task": task, "method": method,
                     "metric": METRIC[task], "mean": float(np.mean(v)) if len(v) else math.nan, "sd": sample_sd(v),
                     "n": len(v), "stored_pct": float(pct.mean()) if len(pct) else untrained,
                     "n_test": int(n_test.iloc[0]) if len(n_test) else 0})
    cols = ["model", "rung_params", "task", "method", "metric", "mean", "sd", "n", "stored_pct", "n_test"]
    return pd.DataFrame(rows, columns=cols)


def run_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per training run: phase, task, model, rung_params, method, seed, cap (params steps), size (low data),
    the RUN_METRICS (NaN where not recorded), lr and the curve ([[step, train loss, val loss]], steps_used info)."""
    d = df[df["metric"].isin(RUN_METRICS) & df["params"].str.contains('"phase"', regex=False)]
    rows = []
    for (p, model, method, seed), g in d.groupby(["params", "model", "method", "seed"], sort=True):
        pp, su = params_of(p), g[g["metric"] == "steps_used"]
        info = params_of(su["info"].iloc[0]) if len(su) else {}
        rows.append({"phase": pp.get("phase"), "task": pp.get("task"), "model": model, "method": method,
                     "seed": int(seed), "rung_params": as_int(pp.get("rung_params")), "cap": as_int(pp.get("steps")),
                     "size": pp.get("size") if pp.get("phase") == "lowdata" else None,
                     **{m: float(v) for m, v in zip(g["metric"], g["value"])},
                     "lr": info.get("lr"), "curve": info.get("curve") or []})
    cols = ["phase", "task", "model", "method", "seed", "rung_params", "cap", "size", *RUN_METRICS, "lr", "curve"]
    out = pd.DataFrame(rows).reindex(columns=cols)
    return out.sort_values(["phase", "task", "rung_params", "model", "method", "seed"], kind="stable",
                           ignore_index=True) if len(out) else out


def chance_levels(df: pd.DataFrame) -> dict:
    """{(task, model): chance accuracy} from the knowledge_chance and chance rows."""
    d = with_params(df[df["metric"].isin(["knowledge_chance", "chance"])], "task")
    return {("knowledge" if k == "knowledge_chance" else t, m): float(v)
            for k, t, m, v in zip(d["metric"], d["task"], d["model"], d["value"])}


def as_int(x) -> int | None:
    return int(float(x)) if finite(x) else None


def dec(x, places: int = PLACES) -> str:
    """x rounded to `places` decimals, through the shared formatter (so an sd of 1e-16 reads 0, not noise)."""
    return num(round(float(x), places), 8) if finite(x) else MISSING


def mean_sd(mean, sd) -> str:
    """mean +- sd (the sd left out when there is none: one seed)."""
    return dec(mean) + (f" +- {dec(sd)}" if finite(sd) else "")


def count_set(v: pd.Series) -> str:
    """How many flags are set (MISSING when none was recorded)."""
    v = pd.to_numeric(v, errors="coerce").dropna()
    return str(int(v.sum())) if len(v) else MISSING


def ordered(values, ref) -> list:
    """values in the order of ref, then the rest sorted."""
    vals = set(v for v in values if isinstance(v, str))
    return [v for v in ref if v in vals] + sorted(vals - set(ref))


def adaptation_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per task and rung (adapt_* rows): zero-shot score, full FT mean, their difference, its SE and ratio, and
    whether the rung passes (>= ADAPT_POINTS and >= ADAPT_SE standard errors)."""
    a = with_params(select(df, "adapt_full_minus_zeroshot"), "task", "rung_params")
    r = with_params(select(df, "adapt_full_minus_zeroshot_over_se"), "task", "rung_params")
    ratio = {(t, m): (v, params_of(i).get("se")) for t, m, v, i in zip(r["task"], r["model"], r["value"], r["info"])}
    rows = []
    for t, m, p, v, i in zip(a["task"], a["model"], a["rung_params"], a["value"], a["info"]):
        z, (q, se) = params_of(i).get("zeroshot", math.nan), ratio.get((t, m), (math.nan, math.nan))
        ok = finite(v) and finite(q) and v >= ADAPT_POINTS and q >= ADAPT_SE
        rows.append({"task": t, "model": m, "rung_params": as_int(p), "zeroshot": z, "full": z + v if finite(z) else
                     math.nan, "diff": v, "se": se, "over_se": q, "passes": bool(ok)})
    cols = ["task", "model", "rung_params", "zeroshot", "full", "diff", "se", "over_se", "passes"]
    out = pd.DataFrame(rows, columns=cols)
    out["t"] = out["task"].map(lambda t: TASKS.index(t) if t in TASKS else len(TASKS))
    return out.sort_values(["t", "rung_params", "model"]).drop(columns="t").reset_index(drop=True)


def gap_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per task and rung (main phase): full FT minus prompt tuning (seed means) with its 95% interval (seeds +
    the test items' binomial error for accuracies; bench.stats.diff_interval, as the checks use)."""
    main = runs[(runs["phase"] == "main") & runs["method"].isin(["full", "prompt"])]
    rows = []
    for (task, model), g in main.groupby(["task", "model"], sort=True):
        if task not in TASKS:
            continue
        v = {m: g[(g["method"] == m) & (g["metric"] == METRIC[task])].sort_values("seed") for m in ("full", "prompt")}
        if v["full"].empty or v["prompt"].empty:
            continue
        n = pd.to_numeric(v["full"]["n_test"], errors="coerce").dropna()
        iv = diff_interval(v["full"]["value"].to_numpy(float), v["prompt"]["value"].to_numpy(float),
                           int(n.iloc[0]) if task in CLASSIFICATION and len(n) else 0)
        rows.append({"task": task, "model": model, "rung_params": as_int(g["rung_params"].max()), "gap": iv.est,
                     "lo": iv.lo, "hi": iv.hi})
    return pd.DataFrame(rows, columns=["task", "model", "rung_params", "gap", "lo", "hi"])
