"""The scale group's report.md, summary.csv and figures, written from the stored CSVs alone (no run needed).

Sections: the header (budgets per task), the verdicts, does each task need adaptation, one table per task,
convergence and budget, the second pretraining seed, the learning-rate search, P2's low data, P3's ablations.
Figures (figures.py): every method vs parameters and its gap to full FT, the Lester et al. 2021 Figure 1 analogue,
the prompt tuning gap per task, the training curves at the largest rung, low data, ablations. The tables as frames:
tables.py. A section or figure whose rows are absent is left out; the same CSVs give the same report.md.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from bench.claims import ADAPT_POINTS, ADAPT_SE, get
from bench.fileio import atomic_write_text
from bench.report import checks_markdown, group_verdicts
from bench.report_tools import MISSING, finite, md_table, num, params_of, select, value, with_params
from bench.schema import read_meta, read_results, write_frame
from reproductions.scale.derive import runs_frame
from reproductions.scale.figures import ablations, curves_figure, figure1, gap_figure, low_data, main_figures
from reproductions.scale.settings import BUDGET_MIN, CLAIMS, GROUP, METHODS, METRIC, TASKS, ZERO_SHOT
from reproductions.scale.tables import (adaptation_table, chance_levels, count_set, dec, mean_sd, ordered, run_table,
                                        summary_table)

PHASES = ("main", "lowdata", "ablation", "replica")     # the phases that train, in report order
PREFIX = {"knowledge": "k", "d2t": "d", "nextmonth": "n"}  # Settings fields: k_steps, d_batch, n_steps, ...


def write_report(out: Path) -> Path:
    out = Path(out)
    df, meta, tm = read_results(out), read_meta(out), read_results(out, timing=True)
    table = summary_table(df)
    write_frame(out / "summary.csv", table)
    runs, per_run, chance = runs_frame(df), run_table(df), chance_levels(df)
    L = (_header(meta) + _design(df, tm) + _verdicts(out) + _adaptation(df) + _main_tables(table, chance, per_run)
         + _convergence(per_run, tm, df, meta) + _replica(df) + _lr_search(df, meta))
    figs = (main_figures(out, table, chance) + figure1(out, table, chance) + gap_figure(out, runs)
            + curves_figure(out, per_run))
    for section in (low_data(out, runs), ablations(out, runs, meta.get("settings") or {})):
        L += section[0]
        figs += section[1]
    L += ["## Figures", ""] if figs else []
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
         "Claims P1 (P-tuning), P2 (prefix tuning), P3 (prompt tuning closes the gap), A1 (adapters); P4 moved "
         "to the serving group (results/serving). **Scale: toy** on the embedded ladder (GPT-2-style models of "
         "0.1-5M parameters on a "
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
                     f"> {info.get('seeds_limit', 64)}" if seeds == "0" else seeds, "-" if not items else "> 10^6" if items == "0" else items,
                     mins if p["runs"] else "-", p.get("noise_from", "?").replace("+", ", ")])
    room = df[df["metric"] == "design_task_with_room"]
    L = ["## Design: power per part before the run", "",
         "Each decided part's power at the published effect (the share of simulated reruns the engine decides "
         "'reproduced'; `bench.power`), with the noise the stored runs named in the last column measured (seed sd "
         "per arm, pooled within runs where several; test items; `reproductions/scale/noise.json`). A part below "
         "0.8 is not run in the cpu profile and reads 'underpowered at this scale'. Minutes: the stored runs' wall "
         "per run x the runs planned (one worker; runs two parts share count in each).", "",
         md_table(["claim", "part", "effect", "effect from", "run here", "seeds", "test items", "power",
                   "false-positive rate", "seeds for 0.8", "items for 0.8", "run-minutes", "noise from"], rows), ""]
    if not room.empty:
        facts = {}
        for r in room.itertuples():      # a row per task; before 2026-12-08 one row whose info held every task
            p, info = json.loads(r.params), json.loads(r.info or "{}")
            facts.update({p["task"]: (r.value, info)} if "task" in p else
                         {t: (v.get("room", r.value), v) for t, v in info.items()})
        L += ["P3's trend needs a task that leaves full FT below the ceiling on >= 3 rungs with a gap to close "
              "(stored runs): " + "; ".join(
                  f"{t}: {v.get('rungs', '?')} rungs, full FT up to {v.get('full_max', math.nan):.3f}, gap at the "
                  f"smallest rung {v.get('gap_smallest', math.nan):+.3f} ({'room' if flag else 'no room'})"
                  for t, (flag, v) in sorted(facts.items())) + ".", ""]
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


def _adaptation(df: pd.DataFrame) -> list[str]:
    """Does each task need adaptation? Full FT vs the zero-shot model per rung, and the precondition per task."""
    tab = adaptation_table(df)
    if tab.empty:
        return []
    rows = [[r.task, f"{r.model} ({num(r.rung_params)})", dec(r.zeroshot), dec(r.full), dec(r.diff), dec(r.se),
             num(r.over_se, 3), "yes" if r.passes else "no"] for r in tab.itertuples()]
    L = ["## Does the task need adaptation?", "",
         "Full fine-tuning (seed mean) minus the zero-shot model (the hand-written prompt on the frozen model; "
         "d2t: the task's own prompt), with the difference's standard error from the seeds and, for accuracies, "
         "the test items' binomial error. The precondition of P1, P2, P3 and A1 on their decided task: "
         f">= {ADAPT_POINTS:g} and >= {ADAPT_SE:g} SE on every rung.", "",
         md_table(["task", "rung", "zero-shot", "full FT", "difference", "SE", "difference / SE", "rung passes"], rows),
         ""]
    for task in ordered(tab["task"], TASKS):
        t = tab[tab["task"] == task]
        bad = list(t[~t["passes"]]["model"])
        L.append(f"- **{task}**: " + ("precondition holds on every rung" if not bad else
                                      f"precondition does not hold: fails on {', '.join(bad)}")
                 + f" (smallest difference {dec(t['diff'].min())}, smallest difference / SE "
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
                             f"{mean_sd(r['mean'].iloc[0], r['sd'].iloc[0])} ({dec(r['stored_pct'].iloc[0], 2)}%)"
                             + flag)
            rows.append([meth] + cells)
        if any((task, m) in chance for m in models):
            rows.append(["chance"] + [dec(chance.get((task, m), math.nan)) for m in models])
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
    for task in ordered(main["task"], TASKS):
        t = main[main["task"] == task]
        top = t[t["rung_params"] == t["rung_params"].max()]
        for meth in ordered(t["method"], METHODS):
            g, gt = t[t["method"] == meth], top[top["method"] == meth]
            caps = "/".join(num(c) for c in sorted(g["cap"].dropna().unique())) or MISSING   # Settings.caps: several
            rows.append([task, meth, len(g), num(g["steps_used"].mean(), 4), num(g["steps_used"].max()), caps,
                         count_set(g["stopped_early"]), count_set(g["still_improving_at_cap"]),
                         gt["model"].iloc[0] if len(gt) else MISSING, dec(gt["final_train_loss"].mean()),
                         dec(gt["val_loss_best"].mean()), num(wall.get(("main", task, meth), math.nan), 4)])
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
    st = meta.get("settings") or {}
    picked = srch["info"].map(lambda i: bool(params_of(i).get("selected"))) if len(srch) else pd.Series(dtype=bool)
    own = with_params(srch, "task")["task"].map(lambda t: _short_search(st, t)) if len(srch) else picked
    short = bool(len(srch)) and bool(own.all())            # every point is a run of its own
    n_pts = int((own | ~picked).sum())
    if w.empty:
        return []
    per = w.groupby("method")["value"].sum()
    per_text = ", ".join(f"{m} {num(per[m], 4)} s" for m in ordered(per.index, METHODS))
    extra = float(select(tm, "lr_search_run_wall_s")["value"].sum())
    total, workers, cached = float(w["value"].sum()) + extra, meta.get("workers") or 1, meta.get("jobs_from_cache", 0)
    return [f"Wall time of the recorded runs per method (every phase and task): {per_text}; together "
            f"{num(w['value'].sum(), 4)} s; the {n_pts} learning-rate search points{'' if short else ' not picked'} "
            f"ran {num(extra, 4)} s "
            f"more (`lr_search_run_wall_s`). Every run together: {num(total, 4)} s of compute, about "
            f"{num(total / workers / 60, 3)} min on {workers} worker(s) if they never waited. The run's own wall: "
            f"{num(meta.get('wall_s'), 4)} s (it also holds zero-shot scoring and loading; runs before 2026-12-07 also P4)"
            + (f"; {cached} runs were replayed from the job cache (earlier invocations with the same settings and "
               "code): their walls are those invocations', so the run's own wall covers only what it trained itself."
               if cached else "."), ""] + budget_lines(meta)


def budget_lines(meta: dict) -> list[str]:
    """Whether the run fits its profile's wall budget (BUDGET_MIN; issue 30: a run over it, or one that replayed
    jobs from the cache, is not a deciding run); [] for a profile without one or a run without a wall."""
    cap, wall = BUDGET_MIN.get(meta.get("profile") or ""), meta.get("wall_s")
    if cap is None or not isinstance(wall, (int, float)):
        return []
    cached = meta.get("jobs_from_cache", 0)
    fits = wall <= cap * 60 and not cached
    why = ("within it, with every job trained in the run: a deciding run" if fits else
           f"{'over it' if wall > cap * 60 else 'within it'}" + (f", with {cached} jobs from the cache" if cached else "")
           + ": not a deciding run (its verdicts are computed all the same)")
    return [f"Budget: the `{meta['profile']}` profile's deciding run has {cap} min of wall on the machine that runs it "
            f"(issue 30); this run took {num(wall / 60, 4)} min on {meta.get('hardware') or 'an unnamed machine'}: "
            f"{why}.", ""]


def _short_search(st: dict, task: str) -> bool:
    """Whether the run's search points on `task` trained a share of the cap (Settings.search_share; settings as the
    run's meta stored them)."""
    return st.get("search_frac") is not None and task not in (st.get("full_search") or ())


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
    for task in ordered(b["task"], TASKS):
        gt, bt = g[g["task"] == task], b[b["task"] == task]
        gap = {int(s): (v, params_of(i), m) for s, v, i, m in zip(gt["pretrain_seed"], gt["value"], gt["info"],
                                                                  gt["model"])}
        if 0 not in gap or 1 not in gap:
            continue
        diff, spread = float(bt["value"].iloc[0]), params_of(bt["info"].iloc[0]).get("se", math.nan)
        cells = [f"{dec(v)} ({m}: {dec(i.get('full'))} - {dec(i.get('prompt'))})" for v, i, m in (gap[0], gap[1])]
        rows.append([task, *cells, dec(diff), dec(spread)])
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
        return f"the gap differs by {dec(diff)} between pretraining seeds; no fine-tuning seed error to compare with."
    if diff > 2 * se:
        return (f"the gap differs by {dec(diff)} between pretraining seeds, more than twice the standard error the "
                f"fine-tuning seeds give it ({dec(se)}): one pretraining per rung understates the gap's uncertainty.")
    return (f"the gap differs by {dec(diff)} between pretraining seeds, within twice the standard error the "
            f"fine-tuning seeds give it ({dec(se)}): no sign that the pretraining seed moves the gap beyond the "
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
        for task in ordered(srch[srch["model"] == model]["task"], TASKS):
            st = srch[(srch["model"] == model) & (srch["task"] == task)]
            for meth in ordered(st["method"], METHODS):
                rows.append(_search_row(st[st["method"] == meth], model, task, meth, inside))
    n_in = sum(r[-2] == "inside" for r in rows)
    st = meta.get("settings") or {}
    full = [t for t in TASKS if not _short_search(st, t)]
    return ["## Learning-rate search", "",
            f"On the search rungs ({', '.join(meta.get('search_rungs') or order)}), seed "
            f"{(meta.get('seeds') or [0])[0]}: " + (
                "every point is a full run (early stopping)" if len(full) == len(TASKS) else
                f"every point trains {num(st['search_frac'])} of its cap with no early stop (`search_frac`: it favours "
                "a fast learning rate)" + (f", except on {', '.join(full)} (`full_search`), where every point is a "
                                           "full run (early stopping)" if full else "")) + ", selected on validation "
            "people (classification: accuracy, ties by the lower loss; d2t: loss); a pick on an edge of the points "
            f"tried adds the next point past it, {st.get('extend', '?')} time(s) per side at most; " + (
                "a full-run point's seed-0 run at the pick is the sweep's" if full else "") +
            ("; " if full and len(full) < len(TASKS) else "") + (
                "the sweep trains every seed afresh at the pick" + (" of a short search" if full else "")
                if len(full) < len(TASKS) else "") +
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
        txt = f"{lr:g}: " + (f"{dec(acc)} / " if finite(acc) else "") + dec(value(p, "lr_search_val_loss"))
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
