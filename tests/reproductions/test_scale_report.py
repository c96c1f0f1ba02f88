"""Tests of reproductions/scale/report.py on a small synthetic results folder written here (no training): the
sections issue 14 added (does the task need adaptation, convergence and budget, the second pretraining seed, the
learning-rate search per rung) read the numbers the rows hold, the figures are written, a folder with pieces
missing (a task, a phase, NaN values, no meta) still gives a report, and the same CSVs give the same report."""

from __future__ import annotations

import importlib
import math

import pandas as pd
import pytest

from bench.schema import Recorder, read_results
from reproductions import scale as S

R = importlib.import_module("reproductions.scale.report")    # the package's `report` attribute is the function
from reproductions.scale import figures as F, tables as T
from reproductions.scale.settings import CLASSIFICATION

RUNGS = (("r1", 100_000), ("r2", 1_000_000))
CAP = {"knowledge": 100, "d2t": 150, "nextmonth": 300}
# main-phase seed means (seeds add -0.01, 0, +0.01): nextmonth needs adaptation (zero-shot 1/12), knowledge not
SCORES = {"knowledge": {"full": 0.12, "prompt": 0.11, "adapters": 0.115},
          "nextmonth": {"full": 0.6, "prompt": 0.3, "adapters": 0.59},
          "d2t": {"full": 0.5, "prefix": 0.45, "adapters": 0.49}}
SETTINGS = {"k_steps": 100, "k_batch": 32, "d_steps": 150, "d_batch": 16, "n_steps": 300, "n_batch": 32,
            "eval_every": [25, 50, 25], "patience": 6, "min_delta": 0.001, "warmup": 50, "prompt_len": 20,
            "d2t_methods": ["full", "adapters", "prefix"], "replica_methods": ["full", "prompt"], "extend": 2}


def steps_used(task: str, method: str, model: str, seed: int) -> tuple[int, int]:
    """(steps used, still improving at the cap): nextmonth full uses 100 / 200 / 300 steps by seed, the
    300-step run (cap) still improving on r2 only; everything else stops early at 50 steps."""
    if task == "nextmonth" and method == "full":
        used = 100 * (seed + 1)
        return used, int(used == CAP[task] and model == "r2")
    return 50, 0


def add_run(rec: Recorder, tm: list, phase: str, model: str, P: int, task: str, method: str, seed: int, score: float,
            claim: str = "-", **extra) -> None:
    """One training run's rows as fitting.record_run writes them (a subset of the metrics) and its wall time."""
    cap = CAP[task]
    if method == "prompt" and "num_virtual_tokens" not in extra:      # describe(kw) of the main sweep's prompt
        extra = {**extra, "num_virtual_tokens": 20, "init": "labels"}
    p = {"phase": phase, "task": task, "rung_params": P, "steps": cap, "batch": 32, "eval_every": 25, "patience": 6,
         "min_delta": 0.001, "n_train": 480, **extra}
    info = {"lr": 0.001} | ({"n_test": 600} if task in CLASSIFICATION else {})
    used, still = steps_used(task, method, model, seed)
    curve = [[s, 2.0 / (1 + s / 100), 2.5 / (1 + s / 200)] for s in range(25, used + 1, 25)]
    metric = S.METRIC[task]
    rec.add(claim, metric, score, model=model, method=method, seed=seed, params=p, info=info)
    for m, v in (("final_train_loss", 1.0 if method == "full" else 2.0), ("val_loss_best", 1.5),
                 ("steps_used", used), ("best_step", used), ("stopped_early", int(used < cap)),
                 ("still_improving_at_cap", still), ("diverged", 0)):
        rec.add(claim, m, v, model=model, method=method, seed=seed, params=p,
                info=info | ({"curve": curve} if m == "steps_used" else {}))
    rec.add(claim, "stored_pct", 100.0 if method == "full" else 2.0, model=model, method=method, seed=seed, params=p,
            info=info, scale="exact")
    tm.append(dict(claim=claim, metric="run_wall_s", value=1.0, model=model, method=method, seed=seed,
                   params=p | {"threads": 1, "load_avg_1m": 0.5}))


def build(folder, replica: bool = True, search: bool = True, tasks=S.TASKS, nan_run: bool = False,
          meta: bool = True) -> Recorder:
    """A synthetic scale run saved into `folder` (results.csv, timings.csv, meta.json), derived rows by derive()."""
    rec = Recorder(group="scale", profile="smoke", out_dir=folder, claims=list(S.CLAIMS))
    tm: list = []
    for name, P in RUNGS:
        rec.add("-", "rung_params", P, model=name, scale="exact")
        for task in tasks:
            if task == "d2t" and name != RUNGS[-1][0]:
                continue                                   # d2t on the largest rung only
            zp = {"phase": "zeroshot", "task": task, "rung_params": P}
            zero = {"knowledge": 0.1, "nextmonth": 1 / 12, "d2t": 0.0}[task]
            rec.add("-", S.METRIC[task], zero, model=name, method=S.ZERO_SHOT, params=zp,
                    info={"n_test": 600} if task in CLASSIFICATION else {})
            if task in CLASSIFICATION:
                rec.add("-", "knowledge_chance" if task == "knowledge" else "chance", 0.07 if task == "knowledge"
                        else 1 / 12, model=name, scale="exact", params={"rung_params": P, "task": task})
            for method, v in SCORES[task].items():
                for seed in (0, 1, 2):
                    score = v + 0.01 * (seed - 1) + (0.2 if method == "prompt" and name == "r2" else 0.0)
                    if nan_run and (task, method, seed) == ("nextmonth", "adapters", 2):
                        score = math.nan
                    add_run(rec, tm, "main", name, P, task, method, seed, score)
    if replica and "nextmonth" in tasks:
        name, P = RUNGS[-1]
        rec.add("-", "accuracy", 1 / 12, model=f"{name}-s1", method=S.ZERO_SHOT, info={"n_test": 600},
                params={"phase": "replica-zeroshot", "task": "nextmonth", "rung_params": P})
        for method, v in (("full", 0.6), ("prompt", 0.3)):        # gap 0.3 against 0.1 on pretraining seed 0
            for seed in (0, 1, 2):
                add_run(rec, tm, "replica", f"{name}-s1", P, "nextmonth", method, seed, v + 0.01 * (seed - 1))
    if "d2t" in tasks:
        name, P = RUNGS[-1]
        for size in (50, 200):
            for method, v in (("full", 0.3), ("prefix", 0.32)):
                for seed in (0, 1, 2):
                    add_run(rec, tm, "lowdata", name, P, "d2t", method, seed, v + 0.01 * seed, claim="P2", size=size)
    if "knowledge" in tasks:
        name, P = RUNGS[0]
        for seed in (0, 1, 2):
            add_run(rec, tm, "ablation", name, P, "knowledge", "prompt", seed, 0.1, claim="P3",
                    num_virtual_tokens=1, init="labels")
    if search:
        add_search(rec, tm)
    for claim, metric, v, p, model in S.derive(S.runs_frame(rec.frame())):     # as run.Sweep.derived records them
        info = {k: p.pop(k) for k in S.DERIVED_MEASURED if k in p}
        rec.add(claim, metric, v, model=model, method=p.pop("method", "-"), params=p, info=info)
    for t in tm:
        rec.add(t.pop("claim"), t.pop("metric"), t.pop("value"), timing=True, unit="s", **t)
    rec.notes.update({"rungs": [n for n, _ in RUNGS], "seeds": [0, 1, 2], "settings": SETTINGS, "workers": 1,
                      "threads": 1, "search_rungs": ["r1", "r2"], "d2t_rungs": ["r2"], "replica": ["r2", "r2-s1"],
                      "jobs_from_cache": 0, "chosen_lrs": {"full/nextmonth/r1": 0.003, "full/nextmonth/r2": 0.01,
                                                          "lora/knowledge/r1": 0.01}})
    rec.save()
    if not meta:
        (folder / "meta.json").unlink()
    return rec


def add_search(rec: Recorder, tm: list) -> None:
    """The lr search of full FT on nextmonth: r1 picks 3e-3 inside 1e-3..1e-2, r2 picks 1e-2 on the high edge; the
    points not picked ran 2 s each (timings)."""
    for (name, P), pick in zip(RUNGS, (0.003, 0.01)):
        tried = (0.001, 0.003, 0.01)
        for lr in tried:
            p = {"phase": "search", "task": "nextmonth", "lr": lr, "steps": 300, "batch": 32, "seed": 0,
                 "grid": "0.001,0.003,0.01", "rung_params": P}
            info = {"selected": lr == pick, "tried": "0.001,0.003,0.01", "steps_used": 200 if lr == pick else 100,
                    "still_improving": lr == pick and name == "r2"}
            rec.add("-", "lr_search_val_accuracy", 0.5 if lr == pick else 0.4, model=name, method="full", seed=0,
                    params=p, info=info)
            rec.add("-", "lr_search_val_loss", 1.0 if lr == pick else 1.2, model=name, method="full", seed=0,
                    params=p, info=info)
            if lr != pick:
                tm.append(dict(claim="-", metric="lr_search_run_wall_s", value=2.0, model=name, method="full", seed=0,
                               params={"threads": 1, "load_avg_1m": 0.5}))
        rec.add("-", "lr_search_pick_inside", int(tried[0] < pick < tried[-1]), model=name, method="full", seed=0,
                params={"phase": "search", "task": "nextmonth", "rung_params": P}, info={"lr": pick})


def section(text: str, heading: str) -> str:
    """The report's text from the heading that starts with `heading` to the next heading."""
    start = text.index("\n" + heading)
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def cells(text: str, *first: str) -> list[str]:
    """The cells of the markdown table row whose first cells are `first`."""
    for line in text.splitlines():
        c = [x.strip() for x in line.strip().strip("|").split("|")]
        if line.startswith("|") and tuple(c[:len(first)]) == first:
            return c
    raise AssertionError(f"no row {first}")


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("scale")
    build(out)
    S.report(out)
    return out, (out / "report.md").read_text()


# ------------------------------------------------------------------------------------------------ the sections

def test_adaptation_table_and_precondition(full_run):
    out, text = full_run
    tab = T.adaptation_table(read_results(out))
    assert list(tab["task"]) == ["knowledge", "knowledge", "d2t", "nextmonth", "nextmonth"]   # TASKS order, rungs up
    nm = tab[tab["task"] == "nextmonth"]
    assert nm["diff"].tolist() == pytest.approx([0.6 - 1 / 12] * 2) and nm["passes"].all()
    assert nm["full"].tolist() == pytest.approx([0.6, 0.6])
    assert not tab[tab["task"] == "knowledge"]["passes"].any()                  # 0.02 < 0.10
    assert "## Does the task need adaptation?" in text
    assert "- **nextmonth**: precondition holds on every rung" in text
    assert "- **knowledge**: precondition does not hold: fails on r1, r2 (smallest difference 0.02," in text
    assert cells(text, "nextmonth", "r1 (100,000)")[2:5] == ["0.083", "0.6", "0.517"]
    assert cells(text, "knowledge", "r2 (1,000,000)")[-1] == "no"


def test_convergence_section_numbers(full_run):
    out, text = full_run
    assert "## Convergence and budget" in text
    row = cells(text, "nextmonth", "full")
    # 6 runs (2 rungs x 3 seeds): 100/200/300 steps each rung -> mean 200, max 300 (= cap); one stopped early per
    # rung at 100, one at 200; one still improving at the cap (r2, seed 2); wall 1 s per run
    assert row[2:8] == ["6", "200", "300", "300", "4", "1"]
    assert row[8:] == ["r2", "1", "1.5", "6"]
    assert cells(text, "d2t", "prefix")[2:6] == ["3", "50", "50", "150"]
    # at the cap: nextmonth full seed 2 on r1, r2 and the replica r2-s1; still improving there: r2's only
    assert "Runs that reached their cap: 3 of" in text and "still improving there (not converged): 1," in text
    assert "- main / nextmonth / full: r2 1 of 3" in text
    per_run = T.run_table(read_results(out))
    tm = read_results(out, timing=True)
    assert len(per_run) == (tm["metric"] == "run_wall_s").sum()     # one row per recorded run
    c = F.curve_array(per_run[(per_run["task"] == "nextmonth") & (per_run["method"] == "full")
                              & (per_run["seed"] == 2)]["curve"].iloc[0])
    assert c.shape == (12, 3) and c[-1, 0] == 300
    nm = section(text, "## nextmonth: accuracy")
    assert cells(nm, "full")[1:] == ["0.6 +- 0.01 (100%)", "0.6 +- 0.01 (100%) [1/3 not converged]"]
    assert cells(nm, "chance")[1:] == ["0.083", "0.083"]
    assert cells(section(text, "## knowledge: accuracy"), "chance")[1:] == ["0.07", "0.07"]


def test_wall_time_line_counts_every_phase(full_run):
    out, text = full_run
    # full: knowledge 6 + d2t 3 + nextmonth 6 + replica 3 + low data 6 = 24 runs of 1 s
    assert "full 24 s" in text
    assert "the 4 learning-rate search points not picked ran 8 s more" in text
    runs = read_results(out, timing=True)["value"].sum()                     # recorded runs + the 8 s of the search
    assert f"Every run together: {runs:g} s of compute, about {runs / 60:.3g} min on 1 worker(s)" in text
    assert "replayed from the job cache of an earlier" not in text          # jobs_from_cache 0


def test_replica_table_and_sentence(full_run):
    _, text = full_run
    assert "## Second pretraining seed" in text
    row = cells(section(text, "## Second pretraining seed"), "nextmonth")
    assert row[1].startswith("0.1 (r2: 0.6 - 0.5)") and row[2].startswith("0.3 (r2-s1: 0.6 - 0.3)")
    assert row[3] == "0.2" and row[4] == "0.012"             # SE of the difference: sqrt(4 x 0.01^2 / 3)
    assert ("- **nextmonth**: the gap differs by 0.2 between pretraining seeds, more than twice the standard error "
            "the fine-tuning seeds give it (0.012)") in text
    assert "within twice" in R._replica_sentence(0.01, 0.05) and "within twice" in R._replica_sentence(0.1, 0.05)
    assert "no fine-tuning seed error" in R._replica_sentence(0.01, math.nan)


def test_lr_search_per_rung(full_run):
    _, text = full_run
    assert "## Learning-rate search" in text and "Picks inside the points tried: 1 of 2." in text
    r1, r2 = cells(text, "r1", "nextmonth", "full"), cells(text, "r2", "nextmonth", "full")
    assert r1[3] == "0.001: 0.4 / 1.2; **0.003: 0.5 / 1**; 0.01: 0.4 / 1.2"
    assert r1[4:] == ["0.003", "inside", "200 of 300"]
    assert r2[4:] == ["0.01", "high edge", "200 of 300 (still improving)"]
    assert "Learning rates used without a search: lora/knowledge/r1 0.01" in text


def test_header_tables_and_figures(full_run):
    out, text = full_run
    assert ("cap 300 steps x batch 32" in text and
            "early stopping: patience 6 evaluations every 50 steps, min_delta 0.001, cap 150 steps x batch 16" in text)
    assert "rungs r2, methods full, adapters, prefix" in text
    for task in S.TASKS:
        assert f"## {task}: {S.METRIC[task]}" in text
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["task"]) == set(S.TASKS) and (summary[summary["task"] == "nextmonth"]["n_test"] == 600).all()
    figs = ("metric_vs_params.png", "gap_vs_params.png", "figure1_analogue.png", "prompt_gap_vs_params.png",
            "curves_largest_rung.png", "lowdata.png", "ablations.png")
    for f in figs:
        assert (out / f).stat().st_size > 0 and f"]({f})" in text, f
    assert "## P2 low data" in text and "## P3 ablations" in text and "## P4" not in text   # P4: the serving group
    gaps = T.gap_table(S.runs_frame(read_results(out)))
    nm = gaps[gaps["task"] == "nextmonth"].set_index("model")
    assert nm.loc["r1", "gap"] == pytest.approx(0.3) and nm.loc["r2", "gap"] == pytest.approx(0.1)
    assert (nm["lo"] < nm["gap"]).all() and (nm["hi"] > nm["gap"]).all()


def test_verdicts_give_generated_sentences_not_the_rule_prose(full_run):
    """The Verdicts section names each claim's parts; its rule is one generated sentence per check (the table),
    not the hand-written design text (`bench claims <ID>` shows that)."""
    from bench.claims import get
    out, text = full_run
    verdicts = section(text, "## Verdicts")
    for cid in S.CLAIMS:
        claim = get(cid)
        assert f"- **{cid}** {claim.title}" in verdicts
        assert not claim.rule or claim.rule[:60] not in verdicts
        if f"| {cid} |" in verdicts:                      # decided from the rows: every check in the table
            for c in (*claim.preconditions, *claim.checks):
                assert c.sentence(part=False).replace("|", "\\|") in verdicts, (cid, c.metric)
    assert "| P2 |" in verdicts and "| A1 |" in verdicts


def test_same_csvs_give_the_same_report(full_run, tmp_path):
    out, text = full_run
    pngs = {f.name: f.read_bytes() for f in out.glob("*.png")}
    S.report(out)
    assert (out / "report.md").read_text() == text
    assert {f.name: f.read_bytes() for f in out.glob("*.png")} == pngs


# ------------------------------------------------------------------------------------------------ missing pieces

def test_missing_tasks_phases_meta_and_nan(tmp_path):
    """Only knowledge, no replica, no search, no meta.json: the report is written, the absent sections are left
    out and every figure it names exists."""
    build(tmp_path, replica=False, search=False, tasks=("knowledge",), meta=False)
    S.report(tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "## knowledge: accuracy" in text and "## nextmonth" not in text and "## d2t" not in text
    for gone in ("## Second pretraining seed", "## Learning-rate search", "## P2 low data"):
        assert gone not in text
    assert "## Does the task need adaptation?" in text and "## Convergence and budget" in text
    assert "(figure1_analogue.png)" in text and "(lowdata.png)" not in text
    for name in [x.split("](")[1].rstrip(")") for x in text.splitlines() if x.startswith("![")]:
        assert (tmp_path / name).exists(), name


def test_nan_run_and_no_timings(tmp_path):
    """A NaN run (diverged) and no timings.csv: the cell reads '-', wall times are left out."""
    build(tmp_path, nan_run=True)
    (tmp_path / "timings.csv").unlink()
    S.report(tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert cells(text, "nextmonth", "adapters")[-1] == "-"           # no wall times recorded
    assert "Wall time of the recorded runs" not in text
    assert "(figure1_analogue.png)" in text


def test_empty_folder(tmp_path):
    S.report(tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert text.startswith("# Scale") and "## Figures" not in text


def test_budget_and_band():
    assert R.budget({}, "d2t") == "early stopping: patience None evaluations every None steps, min_delta None, " \
                                  "cap None steps x batch None"
    assert R.budget(SETTINGS, "nextmonth").endswith("every 25 steps, min_delta 0.001, cap 300 steps x batch 32")
    assert F.band(0.5, 0.0, 3, 100) == pytest.approx(1.959964 * 0.05, rel=1e-5)          # binomial only
    assert F.band(0.5, 0.1, 4, 0) == pytest.approx(1.959964 * 0.05, rel=1e-5)            # seeds only
    assert F.band(0.5, math.nan, 1, 0) == 0.0
    assert F.curve_array([[25, 1.0, 2.0], [50, None, 1.5], "bad"]).shape == (2, 3)


def test_design_section_names_each_parts_noise_and_the_room_per_task():
    """Issue 30: the design table names the runs each part's noise comes from; the room sentence reads a row per
    task, and the one row of runs before 2026-12-08 (every task in its info) the same way."""
    rec = Recorder(group="scale", profile="cpu", out_dir=None, claims=list(S.CLAIMS))
    rec.add("P2", "design_power", 0.88, scale="exact", params={"part": "largest rung", "effect": 0.015, "runs": 1,
                                                              "seeds": 10, "items": 0, "noise_from": "a+b"})
    rec.add("P3", "design_task_with_room", 1, scale="exact", params={"part": "gap closes", "task": "d2t"},
            info={"rungs": 3, "full_max": 0.85, "gap_smallest": 0.64, "room": 1})
    old = Recorder(group="scale", profile="cpu", out_dir=None, claims=list(S.CLAIMS))
    old.rows = [r for r in rec.rows if r["metric"] == "design_power"]
    old.add("P3", "design_task_with_room", 0, scale="exact", params={"part": "gap closes"},
            info={"nextmonth": {"rungs": 5, "full_max": 1.0, "gap_smallest": 0.41, "room": 0}})
    new_lines = "\n".join(R._design(rec.frame(), pd.DataFrame()))
    assert "| a, b |" in new_lines and "d2t: 3 rungs, full FT up to 0.850, gap at the smallest rung +0.640 (room)" in new_lines
    old_lines = "\n".join(R._design(old.frame(), pd.DataFrame()))
    assert "nextmonth: 5 rungs, full FT up to 1.000, gap at the smallest rung +0.410 (no room)" in old_lines
