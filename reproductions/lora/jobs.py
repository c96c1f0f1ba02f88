"""The fine-tuning runs of parts 4 and 5 as independent jobs for bench.jobs.JobRunner.

A job is (kind, method, r, seed). Jobs run in this process, or in `workers` spawned processes of one thread each
(two 1-thread trainings on 2 cores beat one 2-thread training for models this small). Each process builds the
same environment from the rung's name (`make_env`), so results do not depend on where a job ran.
"""

from __future__ import annotations

from typing import NamedTuple

from bench import jobs as bench_jobs
from bench import ladder
from bench.data.tasks import knowledge_task

from reproductions.lora.knowledge import c_attn_weights, knowledge_job
from reproductions.lora.planted import plant, planted_job
from reproductions.lora.rung import tokens, width
from reproductions.lora.settings import Settings


class Job(NamedTuple):
    kind: str        # "knowledge" (part 4) or "planted" (part 5)
    method: str      # "full" or "lora"
    r: int           # LoRA rank; 0 for full FT
    seed: int


def plan(kind: str, ranks, seeds) -> list[Job]:
    """Full FT and LoRA at every rank, for every seed (seed-major)."""
    return [Job(kind, m, r, seed) for seed in seeds for m, r in [("full", 0)] + [("lora", r) for r in ranks]]


def make_env(name: str, s: Settings, plant_scale: float | None = None, base=None, tok=None) -> dict:
    """Everything a job needs: the rung, the knowledge task, the planted task's rows and (given plant_scale)
    teacher. The main process passes the rung it already loaded; a worker loads it by name."""
    if base is None:
        base, tok = ladder.load_rung(name, progress=False)
    world = ladder.load_world(name)
    rows = ladder.pretraining_rows(world, tok, tokens=(s.l6_eval_rows + s.l6_steps * s.l6_batch) * s.l6_seq,
                                   seq_len=s.l6_seq)
    env = {"name": name, "s": s, "base": base.eval(), "tok": tok, "world": world,
           "task": knowledge_task(world, tok, attributes=s.attributes, fmt=s.fmt),
           "l6_eval": rows[:s.l6_eval_rows], "l6_train": rows[s.l6_eval_rows:],
           "ids": tokens(base, 4, 32, seed=7), "w0": c_attn_weights(base)}
    if plant_scale is not None:
        env["teacher"] = plant(base, min(s.l6_k, width(base)), plant_scale, env["l6_eval"], target=s.l6_target)[0]
    return env


def do_job(job: Job) -> dict:
    """Run one job on the environment of this process (bench.jobs.ENV)."""
    fn = knowledge_job if job.kind == "knowledge" else planted_job
    return fn(bench_jobs.ENV, job.method, job.r, job.seed)
