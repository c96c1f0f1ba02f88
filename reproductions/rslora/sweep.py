"""The sweep: one ladder rung, the data-to-text task, LoRA at every rank under both scalings, over seeds and lrs,
then the per-rank lr search and the runs at each rank's pick (tune.py).

Every run is one job (runs.Job: lr, r, seed, method, role, split) of `bench.jobs.JobRunner`: in this process
(workers = 1) or in `workers` spawned processes of one torch thread each, every process loading the rung and the
data once (`make_env`). Jobs share nothing but the base model they copy (see `train_one`); their results come
back as plain data and become rows in plan order (main/second runs, their derived metrics, the search, the tuned
runs), so results.csv and curves.csv (main/second runs only: its key has no role) never depend on the worker count.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from bench import BenchError, jobs
from bench import ladder as L
from bench.data.tasks import data_to_text_task
from bench.data.world import build_world
from bench.methods.lora import find_targets, in_out
from bench.models import load_model
from bench.repro import RunContext
from bench.schema import Recorder, write_frame
from bench.train import collate
from reproductions.rslora.derive import cross_lr, derive
from reproductions.rslora.measure import heldout_loss
from reproductions.rslora.runs import Job, per_run_rows, record_run, run_job, train_key
from reproductions.rslora.settings import CLAIMS, CURVE_COLUMNS, GROUP, METHODS, Settings, settings_for
from reproductions.rslora.tune import Points, picks, record_search, search, search_jobs, tuned_plan

HELDOUT_BATCH = 64      # rows per held-out batch (evaluation only: does not change the loss)


def plan(s: Settings, ranks, seeds) -> list[Job]:
    """Every run at the lrs, lr-major, then rank, seed and scaling: LoRA and rsLoRA of one (r, seed) side by side.
    lrs[0]'s runs are "main" (they decide the verdict's lr-main checks), the others "second"."""
    return [Job(lr, r, seed, m, "main" if lr == s.lrs[0] else "second")
            for lr in s.lrs for r in ranks for seed in seeds for m in METHODS]


def spread(rows: list[dict], n: int) -> list[dict]:
    """At most n rows taken evenly over a split (so from all of its people, not the first few)."""
    return rows[::max(1, len(rows) // n)][:n]


def batches(rows: list[dict]) -> list[dict]:
    """Rows collated into held-out batches of HELDOUT_BATCH rows (padded input_ids, attention_mask, labels)."""
    return [collate(rows[i:i + HELDOUT_BATCH]) for i in range(0, len(rows), HELDOUT_BATCH)]


def make_env(name: str, ladder: str, s: Settings) -> dict:
    """What every run reads (bench.jobs setup; once per process): the base model, the task's rows and labels.

    A ladder rung uses its own world; any other --model (a folder or hub id) gets the profile's world, tokenised
    by its own tokenizer (data-to-text needs no single-token words). The held-out rows are spread over all of
    the task's test people, who never appear in the fine-tuning data; the lr search scores on the validation
    people the same way (the same row cap), so no choice is made on the test people."""
    t0 = time.perf_counter()
    model, tok = load_model(name, ladder)
    world = L.load_world(name) if name in L.SPECS else build_world(ladder)
    load_s = time.perf_counter() - t0
    dd = data_to_text_task(world, tok, per_person=s.per_person, seed=0)
    rows = {k: dd[k].select_columns(["input_ids", "labels"]).to_list() for k in ("train", "validation", "test")}
    held, val = spread(rows["test"], s.heldout_rows), spread(rows["validation"], s.heldout_rows)
    return {"name": name, "s": s, "base": model.eval(), "train_rows": rows["train"], "held_rows": len(held),
            "val_rows": len(val), "heldout_batches": batches(held), "val_batches": batches(val),
            "data": f"data-to-text(world-{world.profile}-seed{world.seed}, {s.per_person}/person)", "load_s": load_s}


def capped_ranks(model, s: Settings) -> tuple[int, ...]:
    """The ranks of `s` that fit every target (r <= min(in, out)); BenchError if fewer than two do."""
    width = min(min(in_out(m)) for _, m in find_targets(model, s.targets))
    ranks = tuple(r for r in s.ranks if r <= width)
    if len(ranks) < 2:
        raise BenchError(f"rslora: needs at least two ranks <= the targets' width {width}; got {s.ranks}")
    return ranks


def record_derived(rec: Recorder, runs: pd.DataFrame, s: Settings, name: str, data: str) -> None:
    """The derived metrics (method "-"), tagged main / second (by their lr) or cross (across lrs)."""
    for metric, value, p, info in derive(runs) + cross_lr(runs, s.lrs[0]):
        role = "cross" if "best_lora_lr" in info else "main" if p["lr"] == s.lrs[0] else "second"
        unit = ("ratio" if metric.endswith("over_spread") else "nats/token per doubling" if "log2" in metric
                else "power of r" if metric.endswith("log_rank") else "nats/token")
        rec.add("L7", metric, value, unit=unit, model=name, data=data, method="-", params={**p, "lr_role": role},
                info=info)


def write_curves(path: Path, curves: list[dict], base_loss: float) -> None:
    """curves.csv: the base model's held-out loss (method base, step 0), then every run's steps in plan order."""
    base_rows = pd.DataFrame([{"method": "base", "r": 0, "seed": -1, "lr": 0.0, "step": 0, "heldout_loss": base_loss}],
                             columns=CURVE_COLUMNS)
    write_frame(path, pd.concat([base_rows, pd.DataFrame(curves, columns=CURVE_COLUMNS)], ignore_index=True))


def tune_lrs(runner: jobs.JobRunner, s: Settings, ranks, seed: int, progress=None) -> Points:
    """The per-rank lr search (tune.search) for both scalings at every rank, each round one runner.map."""
    def score(todo):
        out = runner.map(run_job, search_jobs(todo, seed), progress=progress, desc="rslora lr search")
        return [res["values"]["final_heldout_loss"] for res in out]          # scored on the validation people
    return search(score, [(m, r) for r in ranks for m in METHODS], s)


def map_reusing(runner: jobs.JobRunner, todo: list[Job], done: dict, progress=None) -> tuple[list[dict], set]:
    """(results of `todo` in plan order, the train keys reused): a job whose train_key is in `done` (key ->
    result; a tuned run at one of the main lrs) is not trained again, since it would give the same numbers."""
    fresh = [j for j in todo if train_key(j) not in done]
    got = dict(zip(map(train_key, fresh), runner.map(run_job, fresh, progress=progress, desc="rslora tuned runs")))
    every = {**done, **got}
    return [every[train_key(j)] for j in todo], set(map(train_key, todo)) - set(got)


def run(ctx: RunContext) -> Recorder:
    s = settings_for(ctx)
    seeds = tuple(ctx.seeds)
    if not seeds:
        raise BenchError("rslora: needs at least one seed (three for a verdict)")
    name = ctx.model or s.rung
    env = make_env(name, ctx.profile.ladder, s)
    ranks = capped_ranks(env["base"], s)
    rec = ctx.recorder(GROUP, CLAIMS)
    base_loss = heldout_loss(env["base"], env["heldout_batches"])
    rec.add("L7", "base_heldout_loss", base_loss, unit="nats/token", model=name, data=env["data"],
            params={"rows": env["held_rows"]})
    workers, main_plan = jobs.job_workers(s.workers), plan(s, ranks, seeds)
    with jobs.JobRunner(setup=make_env, args=(name, ctx.profile.ladder, s), workers=workers, env=env) as runner:
        main = runner.map(run_job, main_plan, progress=ctx.progress, desc="rslora runs")
        points = tune_lrs(runner, s, ranks, seeds[0], ctx.progress)
        chosen = picks(points)
        tplan = tuned_plan(chosen, ranks, seeds)
        tuned, reused = map_reusing(runner, tplan, dict(zip(map(train_key, main_plan), main)), ctx.progress)
    for job, res in zip(main_plan, main):                            # plan order, whatever finished first
        record_run(rec, job, res, s, name, env["data"])
    per_run = [row for job, res in zip(main_plan, main) for row in per_run_rows(job, res)]
    record_derived(rec, pd.DataFrame(per_run), s, name, env["data"])      # main / second runs only
    record_search(rec, points, s, seeds[0], name, env["data"])
    for job, res in zip(tplan, tuned):                         # a reused run's wall time is its main run's
        record_run(rec, job, res, s, name, env["data"], timings=train_key(job) not in reused)
    write_curves(Path(ctx.out_dir) / "curves.csv", [c for res in main for c in res["curves"]], base_loss)
    rec.notes.update({"settings": asdict(s) | {"rung": name}, "ranks": list(ranks), "seeds": list(seeds),
                      "threads": jobs.threads_per_worker(), "workers": workers,
                      "load_or_pretrain_s": round(env["load_s"], 1), "train_rows": len(env["train_rows"]),
                      "heldout_rows": env["held_rows"], "validation_rows": env["val_rows"], "task": env["data"],
                      "lr_picks": {f"{m} r={r}": lr for (m, r), (lr, _) in chosen.items()},
                      "tuned_runs_reused": len(reused)})
    return rec
