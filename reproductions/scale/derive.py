"""Derived metrics: from the sweep's per-run rows to the numbers the registry's Checks decide on (bench/claims.py:
P1, P2, P3, A1). Spreads are sample sds over seeds; a NaN run (diverged) makes its cell's mean NaN.

Issue 14 adds rows under claim "-" that several claims' preconditions read: per task and rung, how far full FT
beats the zero-shot model (`adapt_*`: does the task need adaptation?), per (phase, task, method, rung) how many
runs were still improving at the cap (`conv_still_improving`), and the second pretraining seed's spread
(`replica_*`).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from bench.report_tools import with_params
from bench.stats import diff_interval, spearman
from reproductions.scale.settings import A1_MARGIN, CLASSIFICATION, METRIC, TASKS, ZERO_SHOT

# Keys of derive()'s params that are measured (a seed spread, the hand-written prompt's score): row info.
DERIVED_MEASURED = ("spread", "handwritten", "zeroshot", "se", "full", "prompt")


def sample_sd(v) -> float:
    """Sample sd (ddof 1); NaN with fewer than two values."""
    v = np.asarray(v, float)
    return float(np.std(v, ddof=1)) if len(v) >= 2 else math.nan


def _ratio(num: float, den: float) -> float:
    """num / den with a zero spread handled: 0/0 -> 0, x/0 -> +-inf."""
    if not (math.isfinite(num) and math.isfinite(den)):
        return math.nan
    if den == 0:
        return 0.0 if num == 0 else math.copysign(math.inf, num)
    return num / den


def runs_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Per-run rows of results.csv as a frame: phase, model, rung_params, task, method, seed, metric, value,
    size, n, init (from the params JSON)."""
    d = df[df["params"].str.contains('"phase"', regex=False)]
    d = with_params(d, "phase", "rung_params", "task", "size", "num_virtual_tokens", "init")
    n_test = d["info"].map(lambda i: json.loads(i).get("n_test") if isinstance(i, str) and i else None)
    return d.rename(columns={"num_virtual_tokens": "n"}).assign(n_test=n_test)[
        ["phase", "model", "rung_params", "task", "method", "seed", "metric", "value", "size", "n", "init", "n_test"]]


def trend_rungs(runs: pd.DataFrame, task: str, methods: tuple = ("full", "prompt")) -> list[str]:
    """P3's trend on `task`: the rungs whose main sweep ran every one of `methods` there, smallest first."""
    d = runs[(runs["phase"] == "main") & (runs["task"] == task) & (runs["metric"] == METRIC[task])]
    both = set.intersection(*(set(d[d["method"] == m]["model"]) for m in methods))
    size = d.drop_duplicates("model").set_index("model")["rung_params"]
    return sorted(both, key=lambda m: float(size[m]))


def stats(runs: pd.DataFrame, metric: str, by: list[str]) -> pd.DataFrame:
    """Seed mean / sd / count of `metric` per group. A NaN run (diverged) makes the mean NaN: never averaged away."""
    d = runs[runs["metric"] == metric]
    g = d.groupby(by, dropna=False)["value"]
    return g.agg(mean=lambda v: float(np.mean(v.to_numpy(float))), sd=sample_sd, count="size").reset_index()


def derive(runs: pd.DataFrame, chance: dict | None = None) -> list[tuple[str, str, float, dict, str]]:
    """The metrics the registry decides on: [(claim, metric, value, params, model)]. See the rules in
    bench/claims.py (P1, P2, P3, A1); spreads are sample sds over seeds. chance: {(task, model): chance accuracy}
    (the knowledge_chance / chance rows), for P1's precondition."""
    main = runs[runs["phase"] == "main"]
    rungs = (runs[runs["phase"].isin(["main", "zeroshot"])][["model", "rung_params"]].drop_duplicates("model")
             .sort_values("rung_params"))
    order = list(rungs["model"])
    size = dict(zip(rungs["model"], rungs["rung_params"]))
    out = []
    for task in TASKS:
        out += _task_metrics(runs, task, order, size, chance or {})
    if order:                                            # trainable shares at the largest rung
        top = main[(main["model"] == order[-1]) & (main["metric"] == "stored_pct")]
        for meth, claim, metric in (("adapters", "A1", "a1_adapters_stored_pct"),
                                    ("prefix", "P2", "p2_prefix_stored_pct")):
            v = top[top["method"] == meth]["value"]
            if len(v):
                out.append((claim, metric, float(v.mean()), {"rung_params": int(size[order[-1]])}, order[-1]))
    return (out + _low_data(runs) + _ablations(runs, order, size) + _adaptation(runs, order, size)
            + _convergence(runs, order) + _replica(runs))


def _adaptation(runs: pd.DataFrame, order: list, size: dict) -> list:
    """Per task and rung: full FT (seed mean) minus the zero-shot model (the hand-written prompt), and that
    difference over its standard error (seeds + the binomial error of the test items; bench.stats.diff_interval)."""
    main, zero = runs[runs["phase"] == "main"], runs[runs["phase"] == "zeroshot"]
    out = []
    for task in TASKS:
        metric = METRIC[task]
        for m in order:
            f = main[(main["task"] == task) & (main["model"] == m) & (main["method"] == "full") & (main["metric"] == metric)]
            z = zero[(zero["task"] == task) & (zero["model"] == m) & (zero["method"] == ZERO_SHOT) & (zero["metric"] == metric)]
            if f.empty or z.empty:
                continue
            n_items = int(f["n_test"].dropna().iloc[0]) if task in CLASSIFICATION and f["n_test"].notna().any() else 0
            iv = diff_interval(f.sort_values("seed")["value"].to_numpy(float), z["value"].to_numpy(float)[:1], n_items,
                               b_fixed=True)   # the zero-shot model: no seed
            se = math.hypot(iv.se_seeds, iv.se_items)
            p = {"task": task, "rung_params": int(size[m]), "zeroshot": float(z["value"].iloc[0])}
            out.append(("-", "adapt_full_minus_zeroshot", iv.est, dict(p), m))
            out.append(("-", "adapt_full_minus_zeroshot_over_se", _ratio(iv.est, se), {**p, "se": se}, m))
    return out


def _convergence(runs: pd.DataFrame, order: list) -> list:
    """Per (phase, task, method, rung): runs still improving at the cap (early stopping never fired); params
    `of_phase` (not "phase": these are no runs), `largest` / `smallest` (1 or 0), `half` and `trend` (1: the rung ran
    full FT and prompt tuning on the task, P3's trend) let a rule pick rungs."""
    flags = runs[runs["metric"] == "still_improving_at_cap"]
    trend = {t: set(trend_rungs(runs, t)) for t in TASKS}
    out = []
    flags = flags.assign(n=flags["n"].fillna(-1), init=flags["init"].fillna("-"))   # prompt configs apart
    for (phase, task, meth, m, n, init), g in flags.groupby(["phase", "task", "method", "model", "n", "init"],
                                                           sort=True):
        base = m.removesuffix("-s1")
        i = order.index(base) if base in order else -1
        p = {"method": meth, "of_phase": phase, "task": task, "runs": len(g), "largest": int(i == len(order) - 1 and i >= 0),
             "smallest": int(i == 0), "half": "lower" if 0 <= i < max(1, len(order) // 2) else "upper",
             "trend": int(m in trend.get(task, ())),
             **({"n": int(n), "init": init} if n != -1 else {})}
        out.append(("-", "conv_still_improving", float(g["value"].sum()), p, m))
    return out


def _replica(runs: pd.DataFrame) -> list:
    """The second pretraining seed (phase "replica", rung "<base>-s1") against the base rung's main runs: per task,
    the P3 gap (full - prompt, seed means) on each pretraining, their difference, and the fine-tuning seed spread
    of the gap beside it."""
    rep = runs[runs["phase"] == "replica"]
    out = []
    for (m1, task), g1 in rep.groupby(["model", "task"]):
        m0 = m1.removesuffix("-s1")
        g0 = runs[(runs["phase"] == "main") & (runs["model"] == m0) & (runs["task"] == task)]
        gaps = {}
        for seed_p, g in ((0, g0), (1, g1)):
            st = {r.method: r for r in stats(g, METRIC[task], ["method"]).itertuples()}
            if {"full", "prompt"} <= set(st):
                f, pr = st["full"], st["prompt"]
                # the standard error of the gap (a difference of two seed means) from the fine-tuning seeds
                se = math.sqrt(f.sd ** 2 / f.count + pr.sd ** 2 / pr.count)
                gaps[seed_p] = (f.mean - pr.mean, se, f.mean, pr.mean)
        if len(gaps) < 2:
            continue
        for seed_p, (gap, se, fm, pm) in gaps.items():
            p = {"task": task, "pretrain_seed": seed_p, "full": fm, "prompt": pm, "se": se}
            out.append(("-", "replica_gap", gap, p, m1 if seed_p else m0))
        # what the fine-tuning seeds alone would let the two gaps differ by: the SE of their difference
        out.append(("-", "replica_gap_between_pretraining", abs(gaps[1][0] - gaps[0][0]),
                    {"task": task, "se": math.hypot(gaps[0][1], gaps[1][1])}, m0))
    return out


def _task_metrics(runs: pd.DataFrame, task: str, order: list, size: dict, chance: dict) -> list:
    """One task's P3 gaps, P1 differences, A1 and P2 comparisons with full FT, per rung (smallest first)."""
    main, zero = runs[runs["phase"] == "main"], runs[runs["phase"] == "zeroshot"]
    st = stats(main[main["task"] == task], METRIC[task], ["model", "method"])
    if st.empty:
        return []
    cell = {(r.model, r.method): r for r in st.itertuples()}
    zs = {r.model: r.value for r in zero[(zero["task"] == task) & (zero["metric"] == METRIC[task])
                                         & (zero["method"] == ZERO_SHOT)].itertuples()}
    half = {m: ("lower" if i < max(1, len(order) // 2) else "upper") for i, m in enumerate(order)}
    base_p = lambda m: {"task": task, "rung_params": int(size[m]), "half": half[m]}  # noqa: E731
    out = _p3_gaps(cell, task, order, size, base_p) + _p3_seed_gaps(runs, task, size)
    # P1: P-tuning vs the hand-written prompt (frozen model) and vs prompt tuning of the same length
    for m in order:
        pt, pr = cell.get((m, "ptuning")), cell.get((m, "prompt"))
        if pt is not None and m in zs:
            out.append(("P1", "p1_ptuning_minus_handwritten", pt.mean - zs[m], {**base_p(m), "handwritten": zs[m]}, m))
        if pt is not None and pr is not None:
            out.append(("P1", "p1_ptuning_minus_prompt", pt.mean - pr.mean, base_p(m), m))
        if m in zs and (task, m) in chance:      # does the hand-written prompt do the task? (P1's precondition)
            out.append(("P1", "p1_handwritten_minus_chance", zs[m] - chance[(task, m)],
                        {**base_p(m), "largest": int(m == order[-1])}, m))
    # A1: adapters vs full FT; P2: prefix vs full FT
    for m in order:
        f = cell.get((m, "full"))
        for meth, claim in (("adapters", "A1"), ("prefix", "P2")):
            a = cell.get((m, meth))
            if f is None or a is None:
                continue
            spread = max(f.sd, a.sd)
            p = {**base_p(m), "spread": spread}
            if claim == "A1":
                out.append(("A1", "a1_full_minus_adapters", f.mean - a.mean, p, m))
                if m == order[-1]:
                    out.append(("A1", "a1_full_score", f.mean, {"task": task, "rung_params": int(size[m])}, m))
                if m == order[-1]:
                    out.append(("A1", "a1_full_minus_adapters_over_margin",
                                _ratio(f.mean - a.mean, max(A1_MARGIN, spread)), {**p, "margin": A1_MARGIN}, m))
            else:
                out.append(("P2", "p2_prefix_minus_full", a.mean - f.mean, p, m))
                if m == order[-1]:
                    out.append(("P2", "p2_prefix_minus_full_over_spread", _ratio(a.mean - f.mean, spread), dict(p), m))
    return out


def _p3_gaps(cell: dict, task: str, order: list, size: dict, base_p) -> list:
    """P3: gap = full FT - prompt tuning per rung, and its trend with size (Spearman, drop over the spread)."""
    out, gaps = [], []
    for m in order:
        f, p = cell.get((m, "full")), cell.get((m, "prompt"))
        if f is None or p is None:
            continue
        spread = math.sqrt(f.sd ** 2 + p.sd ** 2) if math.isfinite(f.sd) and math.isfinite(p.sd) else math.nan
        gaps.append((m, f.mean - p.mean, spread))
        out.append(("P3", "p3_gap", f.mean - p.mean, {**base_p(m), "spread": spread}, m))
    if len(gaps) >= 2:
        (m0, g0, s0), (m1, g1, s1) = gaps[0], gaps[-1]
        p = {"task": task, "rungs": len(gaps), "smallest": m0, "largest": m1}
        out.append(("P3", "p3_gap_spearman_vs_log_params",
                    spearman([g for _, g, _ in gaps], [math.log(size[m]) for m, _, _ in gaps]), p, "-"))
        out.append(("P3", "p3_gap_drop_over_spread", _ratio(g0 - g1, max(s0, s1)), {**p, "spread": max(s0, s1)}, "-"))
    if gaps:
        out.append(("P3", "p3_gap_smallest_rung", gaps[0][1], {"task": task, "smallest": gaps[0][0]}, gaps[0][0]))
        out.append(("P3", "p3_gap_rungs", len(gaps), {"task": task}, "-"))
        full = [cell[(m, "full")].mean for m, _, _ in gaps]     # a diverged run's NaN mean: NaN, never skipped
        out.append(("P3", "p3_full_max", math.nan if any(map(math.isnan, full)) else max(full), {"task": task}, "-"))
    return out


def _p3_seed_gaps(runs: pd.DataFrame, task: str, size: dict) -> list:
    """P3 'gap closes' (issue 30): per rung that ran both and per seed both ran, full FT minus prompt tuning of that
    seed (params.seed; independent runs, so the rows spread as both arms together), with the rung's place among
    those rungs (smallest / middle / largest). A diverged run gives its seed a NaN row: never dropped."""
    d = runs[(runs["phase"] == "main") & (runs["task"] == task) & (runs["metric"] == METRIC[task])
             & runs["method"].isin(["full", "prompt"])]
    per = {k: float(np.mean(g["value"].to_numpy(float))) for k, g in d.groupby(["model", "method", "seed"])}
    rungs = trend_rungs(runs, task)
    out = []
    for i, m in enumerate(rungs):
        place = "smallest" if i == 0 else "largest" if i == len(rungs) - 1 else "middle"
        seeds = sorted({k[2] for k in per if k[:2] == (m, "full")} & {k[2] for k in per if k[:2] == (m, "prompt")})
        for seed in seeds:
            out.append(("P3", "p3_gap_seed", per[(m, "full", seed)] - per[(m, "prompt", seed)],
                        {"task": task, "rung_params": int(size[m]), "place": place, "rungs": len(rungs),
                         "seed": int(seed)}, m))
    return out


def _low_data(runs: pd.DataFrame) -> list:
    """P2 low data: prefix - full FT (seed means) per training size, and their mean."""
    low = runs[runs["phase"] == "lowdata"]
    if low.empty:
        return []
    out, diffs = [], []
    for (m, n), grp in stats(low, "bleu", ["model", "size", "method"]).groupby(["model", "size"]):
        by = grp.set_index("method")
        if {"prefix", "full"} <= set(by.index):
            diff = by.loc["prefix", "mean"] - by.loc["full", "mean"]
            diffs.append(diff)
            out.append(("P2", "p2_lowdata_prefix_minus_full", diff, {"task": "d2t", "size": int(n)}, m))
    if diffs:
        out.append(("P2", "p2_lowdata_prefix_minus_full_mean", float(np.mean(diffs)),
                    {"task": "d2t", "sizes": len(diffs)}, str(low["model"].iloc[0])))
    return out


def ablation_task(runs: pd.DataFrame) -> str:
    """The task P3's ablations ran on (Settings.ablation_task; knowledge when none ran)."""
    tasks = runs.loc[runs["phase"] == "ablation", "task"].dropna().unique()
    return str(tasks[0]) if len(tasks) else "knowledge"


def ablation_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """P3's ablation runs with the main sweep's prompt runs (length 20, class labels) of their task beside them,
    on the rungs that ran the ablation."""
    abl = runs[(runs["phase"] == "ablation") | ((runs["phase"] == "main") & (runs["method"] == "prompt"))]
    abl = abl[abl["task"] == ablation_task(runs)]
    return abl[abl["model"].isin(set(runs[runs["phase"] == "ablation"]["model"]))]


def _ablations(runs: pd.DataFrame, order: list, size: dict) -> list:
    """P3 ablations: length 20 vs 1 (class-label init), class labels vs random uniform (length 20)."""
    abl = ablation_runs(runs)
    abl_rungs = [m for m in order if m in set(runs[runs["phase"] == "ablation"]["model"])]
    if not abl_rungs:
        return []
    st = stats(abl[abl["model"].isin(abl_rungs)], "accuracy", ["model", "n", "init"])
    cell = {(r.model, int(r.n), r.init): r.mean for r in st.itertuples()}
    out = []
    for i, m in enumerate(abl_rungs):
        p = {"task": ablation_task(runs), "role": "smaller" if i == 0 else "larger", "rung_params": int(size[m])}
        if (m, 20, "labels") in cell and (m, 1, "labels") in cell:
            out.append(("P3", "p3_ablation_len20_minus_len1", cell[(m, 20, "labels")] - cell[(m, 1, "labels")], p, m))
        if (m, 20, "labels") in cell and (m, 20, "random") in cell:
            out.append(("P3", "p3_ablation_labels_minus_random",
                        cell[(m, 20, "labels")] - cell[(m, 20, "random")], p, m))
    return out
