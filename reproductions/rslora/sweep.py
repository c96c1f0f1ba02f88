"""The sweep: one ladder rung, the data-to-text task, LoRA at every rank under both scalings, over seeds and lrs.

Every run is one job (lr, r, seed, method) of `bench.jobs.JobRunner`: in this process (workers = 1) or in
`workers` spawned processes of one torch thread each, every process loading the rung and the data once
(`make_env`). Jobs share nothing but the base model they copy (see `train_one`), and their rows, curves and
per-run values come back as plain data that is replayed into the Recorder in plan order, so results.csv and
curves.csv never depend on the worker count.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import numpy as np
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
from reproductions.rslora.measure import heldout_loss, roughness, train_one
from reproductions.rslora.settings import CLAIMS, CURVE_COLUMNS, GROUP, METHODS, Settings, settings_for

HELDOUT_BATCH = 64      # rows per held-out batch (evaluation only: does not change the loss)
UNITS = {"final_heldout_loss": "nats/token", "final_train_loss": "nats/token", "train_loss_roughness": "nats/token"}


class Job(NamedTuple):
    """One training run; the plan is the list of these in the order results.csv shows them."""
    lr: float
    r: int
    seed: int
    method: str


def plan(s: Settings, ranks, seeds) -> list[Job]:
    """Every run, lr-major, then rank, seed and scaling: LoRA and rsLoRA of one (r, seed) side by side."""
    return [Job(lr, r, seed, m) for lr in s.lrs for r in ranks for seed in seeds for m in METHODS]


def make_env(name: str, ladder: str, s: Settings) -> dict:
    """What every run reads (bench.jobs setup; once per process): the base model, the task's rows and labels.

    A ladder rung uses its own world; any other --model (a folder or hub id) gets the profile's world, tokenised
    by its own tokenizer (data-to-text needs no single-token words). The held-out rows are spread over all of
    the task's test people, who never appear in the fine-tuning data."""
    t0 = time.perf_counter()
    model, tok = load_model(name, ladder)
    world = L.load_world(name) if name in L.SPECS else build_world(ladder)
    load_s = time.perf_counter() - t0
    dd = data_to_text_task(world, tok, per_person=s.per_person, seed=0)
    train_rows = dd["train"].select_columns(["input_ids", "labels"]).to_list()
    held = dd["test"].select_columns(["input_ids", "labels"]).to_list()
    held = held[::max(1, len(held) // s.heldout_rows)][:s.heldout_rows]
    return {"name": name, "s": s, "base": model.eval(), "train_rows": train_rows, "held_rows": len(held),
            "heldout_batches": [collate(held[i:i + HELDOUT_BATCH]) for i in range(0, len(held), HELDOUT_BATCH)],
            "data": f"data-to-text(world-{world.profile}-seed{world.seed}, {s.per_person}/person)", "load_s": load_s}


def capped_ranks(model, s: Settings) -> tuple[int, ...]:
    """The ranks of `s` that fit every target (r <= min(in, out)); BenchError if fewer than two do."""
    width = min(min(in_out(m)) for _, m in find_targets(model, s.targets))
    ranks = tuple(r for r in s.ranks if r <= width)
    if len(ranks) < 2:
        raise BenchError(f"rslora: needs at least two ranks <= the targets' width {width}; got {s.ranks}")
    return ranks


def run_values(out: dict) -> dict[str, float]:
    """One run's per-run metrics: final losses (NaN when it diverged), step means of the norms, roughness."""
    res, curves = out["result"], out["curves"]
    norms = [c for c in curves if math.isfinite(c["grad_A"])]
    mean = lambda key: float(np.mean([c[key] for c in norms])) if norms else math.nan  # noqa: E731
    diverged = res.diverged_at is not None
    return {
        "final_heldout_loss": math.nan if diverged else res.final.get("heldout_loss", math.nan),
        "final_train_loss": math.nan if diverged else res.final.get("final_loss", math.nan),
        "mean_grad_norm_A": mean("grad_A"), "mean_grad_norm_B": mean("grad_B"),
        "mean_param_grad_norm": (float(np.mean([math.hypot(c["grad_A"], c["grad_B"]) for c in norms]))
                                 if norms else math.nan),
        "mean_update_grad_norm": mean("update_grad"), "mean_update_step_norm": mean("update_step"),
        "train_loss_roughness": roughness([c["train_loss"] for c in curves]),
    }


def run_job(job: Job) -> dict:
    """Train one run (bench.jobs.ENV from `make_env`); returns picklable data: rows (a RowBuffer of the
    Recorder calls), curves (curves.csv rows) and per_run (the per-run frame's rows, for `derive`)."""
    env = jobs.ENV
    s, threads = env["s"], jobs.threads_per_worker()
    out = train_one(env["base"], env["train_rows"], env["heldout_batches"], job.method, job.r, job.seed, job.lr,
                    s, threads)
    res, buf = out["result"], jobs.RowBuffer()
    p = {"r": job.r, "alpha": s.alpha, "lr": job.lr, "lr_role": "main" if job.lr == s.lrs[0] else "second",
         "steps": s.steps, "batch": s.batch, "targets": ",".join(s.targets) if s.targets else "default"}
    ident = dict(model=env["name"], data=env["data"], method=job.method, seed=job.seed)

    def add(metric, value, unit, params=p, **kw):
        buf.add("L7", metric, value, unit=unit, params=params, **ident, **kw)

    vals = run_values(out)
    for k, v in vals.items():
        add(k, v, UNITS.get(k, "norm"))
    add("diverged", int(res.diverged_at is not None), "bool")
    add("steps_done", res.steps_done, "steps")
    add("trainable_params", out["trainable_params"], "params")
    add("scaling_applied", out["scalings"][0], "ratio")
    exp = out["expected_scaling"]
    add("scaling_rel_err", max(abs(x - exp) / exp for x in out["scalings"]), "ratio")
    add("step_time_s", res.step_time_s, "s", params={**p, "threads": threads}, timing=True)
    add("run_wall_s", res.wall_s, "s", params={**p, "threads": threads}, timing=True)
    per_run = [{"lr": job.lr, "method": job.method, "r": job.r, "seed": job.seed, "metric": k, "value": v}
               for k, v in vals.items()]
    return {"rows": buf, "curves": out["curves"], "per_run": per_run}


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
    workers = jobs.job_workers(s.workers)
    with jobs.JobRunner(setup=make_env, args=(name, ctx.profile.ladder, s), workers=workers, env=env) as runner:
        results = runner.map(run_job, plan(s, ranks, seeds), progress=ctx.progress, desc="rslora runs")
    for res in results:                                              # plan order, whatever finished first
        res["rows"].replay(rec)
    record_derived(rec, pd.DataFrame([row for res in results for row in res["per_run"]]), s, name, env["data"])
    write_curves(Path(ctx.out_dir) / "curves.csv", [c for res in results for c in res["curves"]], base_loss)
    rec.notes.update({"settings": asdict(s) | {"rung": name}, "ranks": list(ranks), "seeds": list(seeds),
                      "threads": jobs.threads_per_worker(), "workers": workers,
                      "load_or_pretrain_s": round(env["load_s"], 1), "train_rows": len(env["train_rows"]),
                      "heldout_rows": env["held_rows"], "task": env["data"]})
    return rec
