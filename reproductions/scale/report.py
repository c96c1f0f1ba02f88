"""The scale group's report.md, summary.csv and figures, written from the stored CSVs alone (no run needed).

Sections: the header (budgets per task), the verdicts, does each task need adaptation, one table per task,
convergence and budget, the second pretraining seed, the learning-rate search, P2's low data, P3's ablations, P4.
Figures: every method vs parameters and its gap to full FT, the Lester et al. 2021 Figure 1 analogue, the prompt
tuning gap per task, the training curves at the largest rung, low data, ablations. A section or figure whose rows
are absent is left out; the same CSVs give the same report.md.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench.claims import ADAPT_POINTS, ADAPT_SE, get
from bench.fileio import atomic_write_text
from bench.report import checks_markdown, group_verdicts
from bench.report_tools import (MISSING, finite, log_ticks, md_table, num, params_of, pyplot, save_figure, select,
                                value, with_params)
from bench.schema import read_meta, read_results, write_frame
from bench.stats import Z975, diff_interval
from reproductions.scale.derive import ablation_runs, ablation_task, runs_frame, sample_sd, stats
from reproductions.scale.settings import CLAIMS, CLASSIFICATION, GROUP, METHODS, METRIC, TASKS, ZERO_SHOT

PLACES = 3          # decimals of accuracies, BLEU and losses (0-1 metrics: 400 test items resolve 0.0025)
PHASES = ("main", "lowdata", "ablation", "replica")     # the phases that train, in report order
RUN_METRICS = ("steps_used", "best_step", "stopped_early", "still_improving_at_cap", "final_train_loss",
               "val_loss_best", "diverged")
PREFIX = {"knowledge": "k", "d2t": "d", "nextmonth": "n"}  # Settings fields: k_steps, d_batch, n_steps, ...
COLORS = dict(zip((*METHODS, ZERO_SHOT, "frozen"), (f"C{i}" for i in range(10))))   # one colour per method


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
        rows.append({"model": model, "rung_params": _int(g["rung_params"].iloc[0]), "task": task, "method": method,
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
                     "seed": int(seed), "rung_params": _int(pp.get("rung_params")), "cap": _int(pp.get("steps")),
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


def _int(x) -> int | None:
    return int(float(x)) if finite(x) else None


def _dec(x, places: int = PLACES) -> str:
    """x rounded to `places` decimals, through the shared formatter (so an sd of 1e-16 reads 0, not noise)."""
    return num(round(float(x), places), 8) if finite(x) else MISSING


def _mean_sd(mean, sd) -> str:
    """mean +- sd (the sd left out when there is none: one seed)."""
    return _dec(mean) + (f" +- {_dec(sd)}" if finite(sd) else "")


def _count(v: pd.Series) -> str:
    """How many flags are set (MISSING when none was recorded)."""
    v = pd.to_numeric(v, errors="coerce").dropna()
    return str(int(v.sum())) if len(v) else MISSING


def _order(values, ref) -> list:
    """values in the order of ref, then the rest sorted."""
    vals = set(v for v in values if isinstance(v, str))
    return [v for v in ref if v in vals] + sorted(vals - set(ref))


def write_report(out: Path) -> Path:
    out = Path(out)
    df, meta, tm = read_results(out), read_meta(out), read_results(out, timing=True)
    table = summary_table(df)
    write_frame(out / "summary.csv", table)
    runs, per_run, chance = runs_frame(df), run_table(df), chance_levels(df)
    L = (_header(meta) + _design(df, tm) + _verdicts(out) + _adaptation(df) + _main_tables(table, chance, per_run)
         + _convergence(per_run, tm, df, meta) + _replica(df) + _lr_search(df, meta))
    figs = (_main_figures(out, table, chance) + _figure1(out, table, chance) + _gap_figure(out, runs)
            + _curves_figure(out, per_run))
    for section in (_low_data(out, runs), _ablations(out, runs, meta.get("settings") or {})):
        L += section[0]
        figs += section[1]
    L += _p4(df, tm) + (["## Figures", ""] if figs else [])
    for title, f in figs:
        L += [f"{title}:", "", f"![{title}]({f})", ""]
    L += ["Per-run rows: `results.csv` (claim `-`: the sweep; derived metrics carry their claim); per-cell means: "
          "`summary.csv`; wall times: `timings.csv`.", ""]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(L) + "\n")
    return path


def report(out_dir: Path) -> None:
    write_report(Path(out_dir))


# ============================================================================================ sections

def budget(st: dict, task: str) -> str:
    """The task's training budget from the settings: early stopping and its cap."""
    i, p = TASKS.index(task), PREFIX[task]
    every = st.get("eval_every")
    every = every[i] if isinstance(every, (list, tuple)) and len(every) == len(TASKS) else None
    own = [f"{c[1]} {c[3]} ({c[2]} rungs)" for c in st.get("caps") or () if len(c) == 4 and c[0] == task]
    return (f"early stopping: patience {st.get('patience')} evaluations every {every} steps, min_delta "
            f"{st.get('min_delta')}, cap {st.get(f'{p}_steps')} steps x batch {st.get(f'{p}_batch')}"
            + (f"; own caps: {', '.join(own)}" if own else ""))


def _header(meta: dict) -> list[str]:
    st = meta.get("settings") or {}
    d2t_methods = st.get("d2t_methods") or st.get("methods") or []
    rep = meta.get("replica") or []
    L = ["# Scale: do the lightweight methods catch up with full fine-tuning as the model grows?", "",
         "Claims P1 (P-tuning), P2 (prefix tuning), P3 (prompt tuning closes the gap), P4 (mixed-task batches), "
         "A1 (adapters). **Scale: toy** on the embedded ladder (GPT-2-style models of 0.1-5M parameters on a "
         "synthetic world, 2-core CPU), not T5-XXL / GPT-2 Large / BERT-Large: the direction of each effect is "
         "compared with the papers', not their numbers. Rows from `--model` checkpoints are marked scale paper.", "",
         f"- models: {', '.join(meta.get('rungs') or [])}; seeds {meta.get('seeds')}; profile `{meta.get('profile')}`; "
         f"{meta.get('wall_s')} s wall, {meta.get('workers')} worker(s) x {meta.get('threads')} torch thread(s) "
         f"(load average at end {meta.get('load_average_1m_at_end')}); {meta.get('jobs_from_cache', 0)} runs replayed "
         f"from the job cache; versions {meta.get('versions')}",
         f"- knowledge: table form, 5 attributes, tuned on train people, accuracy on test people over the "
         f"attribute's values; {budget(st, 'knowledge')}",
         f"- d2t: table -> sentence, {st.get('per_person')} rows/person, BLEU (0-1) of greedy output on "
         f"{st.get('d_eval_rows')} test rows (one per test person); rungs "
         f"{', '.join(meta.get('d2t_rungs') or []) or '-'}, methods {', '.join(d2t_methods) or '-'}; "
         f"{budget(st, 'd2t')}",
         f"- nextmonth: \"<name> celebrates a birthday in May . new month :\" -> \"June\" for made-up people "
         f"({st.get('n_per_person')} rows/person), accuracy over the months on test people; the zero-shot model "
         f"(prompt design) is the frozen model given {st.get('n_shots')} worked examples from the training rows, then "
         f"the cue (\"new month :\"); {budget(st, 'nextmonth')}",
         "- every run keeps the weights of its best evaluation (validation answer loss); linear warmup over "
         f"min({st.get('warmup')}, cap/10) steps, then cosine over the cap",
         f"- methods: prefix n = {st.get('prefix_len')} (MLP reparam, hidden {st.get('prefix_hidden')}, folded); "
         f"prompt n = {st.get('prompt_len')} ({st.get('prompt_init')} init); P-tuning n = {st.get('prompt_len')} "
         f"({st.get('ptuning_encoder')} encoder, folded); LoRA r = {st.get('lora_r')}, alpha = {st.get('lora_alpha')}; "
         f"adapters size d/{st.get('adapter_ratio')}; BitFit; all through bench.train (AdamW)",
         "- `stored %` = what one task stores (the whole model for full FT; folded prefix / prompt; adapters + "
         "layer norms; LoRA A, B; biases) over the base model's parameters"]
    if len(rep) == 2:
        L.append(f"- second pretraining seed: `{rep[0]}` pretrained again from seed 1 (`{rep[1]}`); "
                 f"{', '.join(st.get('replica_methods') or [])} on its classification tasks with `{rep[0]}`'s "
                 "learning rates")
    return L + [""] + [f"- note: {note}" for note in meta.get("notes") or []]


def _design(df: pd.DataFrame, tm: pd.DataFrame) -> list[str]:
    """The plan's design (issue 30): power per decided part at the published effect, from the rows the harness
    recorded before any run (reproductions.scale.design)."""
    d = df[df["metric"].str.startswith("design_")]
    pw = d[d["metric"] == "design_power"]
    if pw.empty:
        return []
    def val(metric: str, params: str, frame=d) -> str:
        v = frame[(frame["metric"] == metric) & (frame["params"] == params)]["value"]
        return "" if v.empty else f"{v.iloc[0]:g}"
    rows = []
    for r in pw.itertuples():
        p, info = json.loads(r.params), json.loads(r.info or "{}")
        seeds, items = val("design_needed_seeds", r.params), val("design_needed_items", r.params)
        mins = val("design_minutes", r.params, tm) if "metric" in tm else ""
        mins = f"{float(mins):.0f}" if mins else ""
        rows.append([r.claim, p["part"], f"{p['effect']:+.3f}", info.get("source", ""), "yes" if p["runs"] else "no",
                     p["seeds"], p["items"] or "-", f"{r.value:.2f}", f"{info.get('fpr', math.nan):.3f}",
                     "> 64" if seeds == "0" else seeds, "-" if not items else "> 10^6" if items == "0" else items,
                     mins if p["runs"] else "-"])
    room = df[df["metric"] == "design_task_with_room"]
    src = json.loads(pw["params"].iloc[0]).get("noise_from", "?")
    L = ["## Design: power per part before the run", "",
         f"Each decided part's power at the published effect (the share of simulated reruns the engine decides "
         f"'reproduced'; `bench.power`), with the noise the stored cpu run at {src} measured (seed sd per arm, test "
         f"items; `reproductions/scale/noise.json`). A part below 0.8 is not run in the cpu profile and reads "
         f"'underpowered at this scale'. Minutes: the stored run's wall per run x the runs planned (one worker).", "",
         md_table(["claim", "part", "effect", "effect from", "run here", "seeds", "test items", "power",
                   "false-positive rate", "seeds for 0.8", "items for 0.8", "run-minutes"], rows), ""]
    if not room.empty:
        facts = json.loads(room["info"].iloc[0] or "{}")
        L += ["P3's trend needs a task that leaves full FT below the ceiling with a gap to close: " + "; ".join(
            f"{t}: full FT up to {v['full_max']:.3f}, gap at the smallest rung {v['gap_smallest']:+.3f}"
            for t, v in facts.items()) + (" -- none has room, so the trend is not run here." if not room["value"].iloc[0]
                                         else "."), ""]
    return L


def _verdicts(out: Path) -> list[str]:
    """One line per claim (title, parts); the rule itself is the table's generated sentences (one per precondition
    and check, from the machine form: bench.claims.writers), the design rationale is `bench claims <ID>`'s."""
    L = ["", "## Verdicts", "",
         "Rules (`bench/claims/`): one sentence per precondition and check, generated from the machine form, in the "
         "table below; the full rule with its design rationale: `python -m bench claims <ID>`.", ""]
    for cid in CLAIMS:
        claim = get(cid)
        parts = list(dict.fromkeys(c.part for c in claim.checks if c.part))
        L.append(f"- **{cid}** {claim.title}" + (f" (parts: {', '.join(parts)})" if parts else ""))
    return L + ["", checks_markdown(group_verdicts(GROUP, out)), ""]


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
        rows.append({"task": t, "model": m, "rung_params": _int(p), "zeroshot": z, "full": z + v if finite(z) else
                     math.nan, "diff": v, "se": se, "over_se": q, "passes": bool(ok)})
    cols = ["task", "model", "rung_params", "zeroshot", "full", "diff", "se", "over_se", "passes"]
    out = pd.DataFrame(rows, columns=cols)
    out["t"] = out["task"].map(lambda t: TASKS.index(t) if t in TASKS else len(TASKS))
    return out.sort_values(["t", "rung_params", "model"]).drop(columns="t").reset_index(drop=True)


def _adaptation(df: pd.DataFrame) -> list[str]:
    """Does each task need adaptation? Full FT vs the zero-shot model per rung, and the precondition per task."""
    tab = adaptation_table(df)
    if tab.empty:
        return []
    rows = [[r.task, f"{r.model} ({num(r.rung_params)})", _dec(r.zeroshot), _dec(r.full), _dec(r.diff), _dec(r.se),
             num(r.over_se, 3), "yes" if r.passes else "no"] for r in tab.itertuples()]
    L = ["## Does the task need adaptation?", "",
         "Full fine-tuning (seed mean) minus the zero-shot model (the hand-written prompt on the frozen model; "
         "d2t: the task's own prompt), with the difference's standard error from the seeds and, for accuracies, "
         "the test items' binomial error. The precondition of P1, P2, P3 and A1 on their decided task: "
         f">= {ADAPT_POINTS:g} and >= {ADAPT_SE:g} SE on every rung.", "",
         md_table(["task", "rung", "zero-shot", "full FT", "difference", "SE", "difference / SE", "rung passes"], rows),
         ""]
    for task in _order(tab["task"], TASKS):
        t = tab[tab["task"] == task]
        bad = list(t[~t["passes"]]["model"])
        L.append(f"- **{task}**: " + ("precondition holds on every rung" if not bad else
                                      f"precondition does not hold: fails on {', '.join(bad)}")
                 + f" (smallest difference {_dec(t['diff'].min())}, smallest difference / SE "
                   f"{num(t['over_se'].min(), 3)})")
    return L + [""]


def _main_tables(table: pd.DataFrame, chance: dict, per_run: pd.DataFrame) -> list[str]:
    """Per task: method x rung, seed mean +- sd of the task's metric with the stored %, the runs still improving at
    their cap, and chance for the classification tasks."""
    L, main = [], per_run[per_run["phase"] == "main"]
    still = main.groupby(["task", "model", "method"])["still_improving_at_cap"].agg(["sum", "size"]).to_dict("index")
    for task in TASKS:
        tt = table[table["task"] == task]
        if tt.empty:
            continue
        models = list(dict.fromkeys(tt.sort_values("rung_params", kind="stable")["model"]))
        meths = [m for m in (ZERO_SHOT, "frozen", *METHODS) if m in set(tt["method"])]
        header = ["method"] + [f"{m} ({num(tt[tt['model'] == m]['rung_params'].iloc[0])})" for m in models]
        rows = []
        for meth in meths:
            cells = []
            for m in models:
                r = tt[(tt["model"] == m) & (tt["method"] == meth)]
                k = still.get((task, m, meth), {})
                flag = f" [{int(k['sum'])}/{k['size']} not converged]" if finite(k.get("sum")) and k["sum"] > 0 else ""
                cells.append(MISSING if r.empty else
                             f"{_mean_sd(r['mean'].iloc[0], r['sd'].iloc[0])} ({_dec(r['stored_pct'].iloc[0], 2)}%)"
                             + flag)
            rows.append([meth] + cells)
        if any((task, m) in chance for m in models):
            rows.append(["chance"] + [_dec(chance.get((task, m), math.nan)) for m in models])
        L += [f"## {task}: {METRIC[task]} (mean +- sd over seeds; stored % per task)", "", md_table(header, rows), ""]
    if len(main) and (main["still_improving_at_cap"] > 0).any():
        L += ["[k/n not converged]: k of the cell's n runs were still improving at their cap.", ""]
    return L


def _convergence(per_run: pd.DataFrame, tm: pd.DataFrame, df: pd.DataFrame, meta: dict) -> list[str]:
    """Convergence and budget: per task x method (main phase) the steps used, the flags, the losses at the largest
    rung and the wall time; then the wall time per method, and which runs hit their cap."""
    main = per_run[per_run["phase"] == "main"]
    if main.empty:
        return []
    wall = _wall(tm)
    rows = []
    for task in _order(main["task"], TASKS):
        t = main[main["task"] == task]
        top = t[t["rung_params"] == t["rung_params"].max()]
        for meth in _order(t["method"], METHODS):
            g, gt = t[t["method"] == meth], top[top["method"] == meth]
            caps = "/".join(num(c) for c in sorted(g["cap"].dropna().unique())) or MISSING   # Settings.caps: several
            rows.append([task, meth, len(g), num(g["steps_used"].mean(), 4), num(g["steps_used"].max()), caps,
                         _count(g["stopped_early"]), _count(g["still_improving_at_cap"]),
                         gt["model"].iloc[0] if len(gt) else MISSING, _dec(gt["final_train_loss"].mean()),
                         _dec(gt["val_loss_best"].mean()), num(wall.get(("main", task, meth), math.nan), 4)])
    L = ["## Convergence and budget", "",
         "Main sweep, per task and method over rungs and seeds: steps used until early stopping (mean, max) and the "
         "cap; runs stopped early (patience ran out before the cap) and runs still improving at the cap (a better "
         "validation loss within the last `patience` evaluations: not converged); the training loss at the kept "
         "(best) step and the best validation answer loss (nats/token; seed means at the largest rung); the wall "
         "time of the runs (sum of `run_wall_s`).", "",
         md_table(["task", "method", "runs", "steps used (mean)", "steps used (max)", "cap", "stopped early",
                   "still improving at cap", "largest rung", "final train loss", "best val loss", "wall s"], rows),
         ""]
    return L + _wall_lines(tm, df, meta) + _cap_lines(per_run)


def _wall(tm: pd.DataFrame) -> dict:
    """{(phase, task, method): sum of run_wall_s}."""
    w = with_params(select(tm, "run_wall_s"), "phase", "task")
    return {k: float(g["value"].sum()) for k, g in w.groupby(["phase", "task", "method"], sort=True)}


def _wall_lines(tm: pd.DataFrame, df: pd.DataFrame, meta: dict) -> list[str]:
    """Wall time of the recorded runs per method (every phase), the search points not picked, and the compute of
    every run against the run's wall time (a resumed run replays earlier runs' walls from the job cache)."""
    w = select(tm, "run_wall_s")
    srch = select(df, "lr_search_val_loss")
    short = (meta.get("settings") or {}).get("search_frac") is not None    # every point is a run of its own
    picked = srch["info"].map(lambda i: bool(params_of(i).get("selected"))) if len(srch) else pd.Series(dtype=bool)
    n_pts = len(srch) if short else int((~picked).sum())
    if w.empty:
        return []
    per = w.groupby("method")["value"].sum()
    per_text = ", ".join(f"{m} {num(per[m], 4)} s" for m in _order(per.index, METHODS))
    extra = float(select(tm, "lr_search_run_wall_s")["value"].sum())
    total, workers, cached = float(w["value"].sum()) + extra, meta.get("workers") or 1, meta.get("jobs_from_cache", 0)
    return [f"Wall time of the recorded runs per method (every phase and task): {per_text}; together "
            f"{num(w['value'].sum(), 4)} s; the {n_pts} learning-rate search points{'' if short else ' not picked'} "
            f"ran {num(extra, 4)} s "
            f"more (`lr_search_run_wall_s`). Every run together: {num(total, 4)} s of compute, about "
            f"{num(total / workers / 60, 3)} min on {workers} worker(s) if they never waited. The run's own wall: "
            f"{num(meta.get('wall_s'), 4)} s (it also holds zero-shot scoring, P4 and loading)"
            + (f"; {cached} runs were replayed from the job cache (earlier invocations with the same settings and "
               "code): their walls are those invocations', so the run's own wall covers only what it trained itself."
               if cached else "."), ""]


def _cap_lines(per_run: pd.DataFrame) -> list[str]:
    """Which runs reached their cap, and which of them were still improving there, per phase, task and method."""
    runs = per_run[per_run["phase"].isin(PHASES)]
    hit = runs[pd.to_numeric(runs["steps_used"], errors="coerce") >= pd.to_numeric(runs["cap"], errors="coerce")]
    still = runs[runs["still_improving_at_cap"] > 0]
    L = [f"Runs that reached their cap: {len(hit)} of {len(runs)} (every phase); of them still improving there "
         f"(not converged): {len(still)}" + ("." if still.empty else ", per phase / task / method (runs per rung):"),
         ""]
    n_runs = runs.groupby(["phase", "task", "method", "model"]).size().to_dict()
    keys = sorted({(p, t, m) for p, t, m in zip(still["phase"], still["task"], still["method"])},
                  key=lambda k: (PHASES.index(k[0]), _rank(k[1], TASKS), _rank(k[2], METHODS), k))
    for p, t, m in keys:
        g = still[(still["phase"] == p) & (still["task"] == t) & (still["method"] == m)]
        per = g.groupby("model", sort=False).size()
        rungs = sorted(per.index, key=lambda x: (g[g["model"] == x]["rung_params"].max(), x))
        L.append(f"- {p} / {t} / {m}: " + ", ".join(f"{x} {per[x]} of {n_runs[(p, t, m, x)]}" for x in rungs))
    return L + ([""] if keys else [])


def _rank(x, ref) -> int:
    return ref.index(x) if x in ref else len(ref)


def _replica(df: pd.DataFrame) -> list[str]:
    """The second pretraining seed: per task the gap (full - prompt) on each pretraining, their difference and the
    fine-tuning seed spread beside it, with a sentence comparing the two."""
    g = with_params(select(df, "replica_gap"), "task", "pretrain_seed")
    b = with_params(select(df, "replica_gap_between_pretraining"), "task")
    if g.empty or b.empty:
        return []
    rows, lines = [], []
    for task in _order(b["task"], TASKS):
        gt, bt = g[g["task"] == task], b[b["task"] == task]
        gap = {int(s): (v, params_of(i), m) for s, v, i, m in zip(gt["pretrain_seed"], gt["value"], gt["info"],
                                                                  gt["model"])}
        if 0 not in gap or 1 not in gap:
            continue
        diff, spread = float(bt["value"].iloc[0]), params_of(bt["info"].iloc[0]).get("se", math.nan)
        cells = [f"{_dec(v)} ({m}: {_dec(i.get('full'))} - {_dec(i.get('prompt'))})" for v, i, m in (gap[0], gap[1])]
        rows.append([task, *cells, _dec(diff), _dec(spread)])
        lines.append(f"- **{task}**: " + _replica_sentence(diff, spread))
    if not rows:
        return []
    return ["## Second pretraining seed", "",
            "P3's gap (full FT minus prompt tuning, seed means) on the base rung (pretraining seed 0) and on the same "
            "rung pretrained again from seed 1; the difference between them, and the standard error of that "
            "difference from the fine-tuning seeds alone (sqrt of the sum of sd^2 / seeds over the four cells): what "
            "the gap would move by if the pretraining seed did not matter.", "",
            md_table(["task", "gap, pretraining seed 0 (full - prompt)", "gap, pretraining seed 1 (full - prompt)",
                      "difference", "its SE from the fine-tuning seeds"], rows), "", *lines, ""]


def _replica_sentence(diff: float, se: float) -> str:
    """Whether the gap moves more between pretraining seeds than the fine-tuning seeds alone would move it."""
    if not (finite(diff) and finite(se)):
        return f"the gap differs by {_dec(diff)} between pretraining seeds; no fine-tuning seed error to compare with."
    if diff > 2 * se:
        return (f"the gap differs by {_dec(diff)} between pretraining seeds, more than twice the standard error the "
                f"fine-tuning seeds give it ({_dec(se)}): one pretraining per rung understates the gap's uncertainty.")
    return (f"the gap differs by {_dec(diff)} between pretraining seeds, within twice the standard error the "
            f"fine-tuning seeds give it ({_dec(se)}): no sign that the pretraining seed moves the gap beyond the "
            f"fine-tuning seeds' noise (one replica: a weak check).")


def _lr_search(df: pd.DataFrame, meta: dict) -> list[str]:
    """Per search rung, task and method: the points tried (validation accuracy / loss), the pick, whether it lies
    inside the points tried or on an edge, and the steps its run used."""
    srch = with_params(df[df["metric"].isin(["lr_search_val_accuracy", "lr_search_val_loss"])], "task", "lr",
                       "rung_params", "steps")
    if srch.empty:
        return []
    pi = with_params(select(df, "lr_search_pick_inside"), "task")
    inside = {(m, t, me): v for m, t, me, v in zip(pi["model"], pi["task"], pi["method"], pi["value"])}
    size = pd.to_numeric(srch["rung_params"], errors="coerce").groupby(srch["model"]).max()
    order = size.reset_index().sort_values(["rung_params", "model"], kind="stable")["model"]
    rows = []
    for model in order:
        for task in _order(srch[srch["model"] == model]["task"], TASKS):
            st = srch[(srch["model"] == model) & (srch["task"] == task)]
            for meth in _order(st["method"], METHODS):
                rows.append(_search_row(st[st["method"] == meth], model, task, meth, inside))
    n_in = sum(r[-2] == "inside" for r in rows)
    st = meta.get("settings") or {}
    return ["## Learning-rate search", "",
            f"On the search rungs ({', '.join(meta.get('search_rungs') or order)}), seed "
            f"{(meta.get('seeds') or [0])[0]}: " + (
                "every point is a full run (early stopping)" if st.get("search_frac") is None else
                f"every point trains {num(st['search_frac'])} of its cap with no early stop (`search_frac`: it favours "
                "a fast learning rate)") + ", selected on validation "
            "people (classification: accuracy, ties by the lower loss; d2t: loss); a pick on an edge of the points "
            f"tried adds the next point past it, {st.get('extend', '?')} time(s) per side at most; " + (
                "its seed-0 run is the sweep's" if st.get("search_frac") is None else
                "the sweep trains every seed afresh at the pick") +
            ". The other rungs take the pick of the search rung nearest in log parameters. "
            f"Picks inside the points tried: {n_in} of {len(rows)}.", "",
            md_table(["rung", "task", "method", "points tried: lr (val accuracy / val loss)", "pick",
                      "pick inside", "steps used at the pick"], rows), ""] + _unsearched(meta, srch)


def _search_row(g: pd.DataFrame, model: str, task: str, meth: str, inside: dict) -> list:
    """One (rung, task, method) of the search: its points, the pick, inside or the edge, the pick's steps."""
    pts, pick, info, cap = [], None, {}, g["steps"].max()
    for lr, p in g.groupby("lr", sort=True):
        i = params_of(p["info"].iloc[0])
        acc = value(p, "lr_search_val_accuracy")
        txt = f"{lr:g}: " + (f"{_dec(acc)} / " if finite(acc) else "") + _dec(value(p, "lr_search_val_loss"))
        if i.get("selected"):
            pick, info, txt = lr, i, f"**{txt}**"
        pts.append(txt)
    lrs = sorted(g["lr"].dropna().unique())
    flag = inside.get((model, task, meth))
    where = (MISSING if pick is None or flag is None else "inside" if flag else
             "low edge" if pick == lrs[0] else "high edge" if pick == lrs[-1] else "edge")
    steps = info.get("steps_used")
    used = MISSING if steps is None else f"{num(steps)} of {num(cap)}" + (" (still improving)" if info.get(
        "still_improving") else "")
    return [model, task, meth, "; ".join(pts), MISSING if pick is None else f"{pick:g}", where, used]


def _unsearched(meta: dict, srch: pd.DataFrame) -> list[str]:
    """Learning rates the run used without a search of their own (no search rows for method/task/rung)."""
    done = {f"{m}/{t}/{r}" for m, t, r in zip(srch["method"], srch["task"], srch["model"])}
    rest = {k: v for k, v in (meta.get("chosen_lrs") or {}).items() if k not in done}
    return ["Learning rates used without a search: " + ", ".join(f"{k} {v:g}" for k, v in sorted(rest.items())),
            ""] if rest else []


# ============================================================================================ figures

def _main_figures(out: Path, table: pd.DataFrame, chance: dict) -> list[tuple[str, str]]:
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


def _figure1(out: Path, table: pd.DataFrame, chance: dict) -> list[tuple[str, str]]:
    """Lester et al. 2021 Figure 1 analogue per classification task: score vs parameters for model tuning,
    prompt tuning and prompt design, 95% bands (seeds + test items), chance dotted."""
    tasks = [t for t in CLASSIFICATION
             if table[(table["task"] == t) & table["method"].isin(["full", "prompt"])]["mean"].notna().any()]
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
        rows.append({"task": task, "model": model, "rung_params": _int(g["rung_params"].max()), "gap": iv.est,
                     "lo": iv.lo, "hi": iv.hi})
    return pd.DataFrame(rows, columns=["task", "model", "rung_params", "gap", "lo", "hi"])


def _gap_figure(out: Path, runs: pd.DataFrame) -> list[tuple[str, str]]:
    """P3's gap (full FT minus prompt tuning) vs parameters, one line per task, 95% interval bars."""
    gaps = gap_table(runs).dropna(subset=["rung_params"])
    if gaps.empty:
        return []
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, task in enumerate(_order(gaps["task"], TASKS)):
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


def _curves_figure(out: Path, per_run: pd.DataFrame) -> list[tuple[str, str]]:
    """Training curves at each task's largest rung: per method, its first seed's train loss (dashed) and validation
    answer loss (solid) vs step, the kept (best) step marked, the cap dotted."""
    main = per_run[(per_run["phase"] == "main") & per_run["curve"].map(bool)]
    tasks = _order(main["task"], TASKS)
    if not tasks:
        return []
    plt = pyplot()
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        t = main[main["task"] == task]
        top = t[t["rung_params"] == t["rung_params"].max()]
        ys = []
        for meth in _order(top["method"], METHODS):
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


def _low_data(out: Path, runs: pd.DataFrame) -> tuple[list[str], list]:
    """P2's low-data run: BLEU of full FT and prefix tuning per training size, table and figure."""
    low = runs[(runs["phase"] == "lowdata") & (runs["metric"] == "bleu")]
    low = low[pd.to_numeric(low["size"], errors="coerce").notna()]
    if low.empty:
        return [], []
    st_low = stats(low, "bleu", ["size", "method"])
    rows = []
    for n, g in st_low.groupby("size"):
        by = g.set_index("method")
        rows.append([int(n)] + [_mean_sd(by.loc[m, "mean"], by.loc[m, "sd"]) if m in by.index else MISSING
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


def _ablations(out: Path, runs: pd.DataFrame, st: dict) -> tuple[list[str], list]:
    """P3's ablations: accuracy per rung on their task, prompt length and init, table and figure."""
    abl = ablation_runs(runs)
    abl = abl[(abl["metric"] == "accuracy") & pd.to_numeric(abl["n"], errors="coerce").notna() & abl["init"].notna()]
    if abl.empty:
        return [], []
    st_abl = stats(abl, "accuracy", ["model", "n", "init"])
    rows = [[r.model, int(r.n), r.init, _mean_sd(r.mean, r.sd)]
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


def _p4(df: pd.DataFrame, tm: pd.DataFrame) -> list[str]:
    """P4: equivalence and serving parameters (results.csv), batch timings (timings.csv), per method."""
    p4 = select(df, claim="P4")
    if p4.empty:
        return []
    rows = []
    for m in ("prompt", "lora"):
        g, t = select(p4, method=m), select(tm, claim="P4", method=m)
        rows.append([m, num(value(g, f"p4_{m}_mixed_max_abs_diff"), 3), _dec(value(g, "p4_serving_params_ratio")),
                     _dec(value(t, "p4_mixed_batch_s"), 4), _dec(value(t, "p4_per_task_batches_s"), 4),
                     _dec(value(t, "p4_mixed_examples_per_s_over_per_task"), 2) + "x"])
    return ["## P4 mixed-task batches", "",
            md_table(["method", "max abs diff (logits)", "serving params ratio", "mixed batch s",
                      "one batch per task s", "speed-up"], rows),
            "", "Timings are medians of round-robin rounds on a shared 2-core machine (indicative only).", ""]
