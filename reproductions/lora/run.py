"""The measurement recipe: the six parts in run order, each timed (meta.json `part_wall_s`, report.md).

Torch threads follow the one policy (bench.jobs.threads_per_worker: $BENCH_THREADS, else 1); the fine-tuning
runs go to bench.jobs.JobRunner with `workers` processes ($BENCH_WORKERS overrides).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import asdict

from bench import BenchError
from bench.jobs import JobRunner, job_workers, threads_per_worker
from bench.repro import RunContext, settings_with_overrides
from bench.schema import Recorder
from bench.train import num_threads

from reproductions.lora import design
from reproductions.lora.exact import exact_counts
from reproductions.lora.jobs import Job, do_job, make_env, plan
from reproductions.lora.knowledge import knowledge_runs
from reproductions.lora.memory import memory_sweep
from reproductions.lora.merge import l1_step0, latency
from reproductions.lora.planted import calibrate_env, planted_runs
from reproductions.lora.rung import capped_ranks, load
from reproductions.lora.settings import ALPHA, CLAIMS, GROUP, SETTINGS, Settings
from reproductions.lora.tuning import search_full_lr


def run(ctx: RunContext) -> Recorder:
    s = settings_with_overrides(ctx, SETTINGS, GROUP)
    threads = threads_per_worker()
    with num_threads(threads):
        rec = _run(ctx, s)
    rec.notes["threads"] = threads
    return rec


@contextmanager
def _part(walls: dict, name: str):
    """Wall seconds of the block into walls[name]."""
    t = time.perf_counter()
    yield
    walls[name] = time.perf_counter() - t


def _run(ctx: RunContext, s: Settings) -> Recorder:
    seeds = tuple(ctx.seeds)
    if not seeds:
        raise BenchError("lora: needs at least one seed")
    rec = ctx.recorder(GROUP, CLAIMS)
    walls = {}
    with _part(walls, "load_or_pretrain_rung"):
        base, tok, world, name = load(ctx, s)           # first: a bad --model fails before any work
    with _part(walls, "exact"):
        ex = exact_counts(rec)
        rec.notes["memory_model_assumptions"] = {k: v["assumptions"] for k, v in ex["memory"].items()}
    ranks = capped_ranks(s.ranks, base)
    with _part(walls, "l1_step0"):
        l1_step0(rec, base, name, ranks, seeds)
    with _part(walls, "memory"):
        mem_totals = memory_sweep(rec, base, name, s, ranks)
    if world is not None:
        _fine_tuning(ctx, rec, s, walls, base, tok, name, seeds, mem_totals)
    skipped = [] if world is not None else ["L4", "L5 (trained)", "L6 (need a ladder rung's world)"]
    rec.notes.update({"part_wall_s": {k: round(v, 1) for k, v in walls.items()},
                      "settings": asdict(s) | {"rung": name}, "ranks": list(ranks), "alpha": ALPHA, "skipped": skipped})
    return rec


def _fine_tuning(ctx: RunContext, rec: Recorder, s: Settings, walls: dict, base, tok, name, seeds,
                 mem_totals: dict) -> None:
    """Parts 4-6 (need the rung's world): full FT's lr search, then the knowledge, planted and null runs as jobs,
    then latency."""
    with _part(walls, "design"):                      # L4's design power, before any run trains
        design.record(rec, len(seeds))
    with _part(walls, "task_setup"):
        env = make_env(name, s, base=base, tok=tok)
        calibrate_env(env)
    workers = job_workers(s.workers)
    with JobRunner(setup=make_env, args=(name, s, env["plant_scale"]), workers=workers, env=env) as runner:
        with _part(walls, "full_lr_search"):
            full_lr = search_full_lr(runner, rec, env, seeds[0], ctx.progress)
        k_jobs = plan("knowledge", capped_ranks(s.ranks, base), seeds, full_lr)
        p_jobs = plan("planted", capped_ranks(s.l6_ranks, base), seeds)
        n_jobs = [Job("shuffled", "full", 0, seed, full_lr) for seed in seeds]
        with _part(walls, "fine_tuning_runs"):
            results = runner.map(do_job, p_jobs + k_jobs + n_jobs, progress=ctx.progress,
                                 desc="lora: fine-tuning runs")
    rec.notes["workers"] = workers
    n_p, n_k = len(p_jobs), len(k_jobs)
    info = knowledge_runs(rec, env, results[n_p:n_p + n_k], k_jobs, seeds, mem_totals, results[n_p + n_k:])
    planted_runs(rec, env, results[:n_p], p_jobs, results[n_p + n_k:])
    with _part(walls, "latency"):
        latency(rec, base, info.pop("trained_lora"), name, s)
