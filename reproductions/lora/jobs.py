"""The fine-tuning runs of parts 4 and 5 as independent jobs for bench.jobs.JobRunner.

A job is (kind, method, r, seed, lr): kind "knowledge" (part 4), "planted" (part 5), "search" (full FT scored
on the knowledge task's validation people, one point of the lr search) or "shuffled" (full FT on permuted
answers: L6's null); lr 0 means the settings' lr for the method. Jobs run in this process, or in `workers` spawned processes of one thread each
(two 1-thread trainings on 2 cores beat one 2-thread training for models this small). Each process builds the
same environment from the rung's name (`make_env`), so results do not depend on where a job ran.
"""

from __future__ import annotations

from typing import NamedTuple

from bench import jobs as bench_jobs
from bench import ladder
from bench.ladder.build import pretraining_rows
from bench.data.tasks import knowledge_task

from reproductions.lora.knowledge import knowledge_job, shuffled_answers
from reproductions.lora.planted import plant, planted_job
from reproductions.lora.rung import tokens, width
from reproductions.lora.settings import Settings
from reproductions.lora.spectra import c_attn_weights


class Job(NamedTuple):
    kind: str        # "knowledge", "planted", "search" or "shuffled"
    method: str      # "full" or "lora"
    r: int           # LoRA rank; 0 for full FT
    seed: int
    lr: float = 0.0  # 0: the settings' lr of the method


def plan(kind: str, ranks, seeds, full_lr: float = 0.0) -> list[Job]:
    """Full FT (at `full_lr`) and LoRA at every rank, for every seed (seed-major)."""
    return [Job(kind, m, r, seed, full_lr if m == "full" else 0.0)
            for seed in seeds for m, r in [("full", 0)] + [("lora", r) for r in ranks]]


def make_env(name: str, s: Settings, plant_scale: float | None = None, base=None, tok=None) -> dict:
    """Everything a job needs: the rung, the knowledge task, the planted task's rows and (given plant_scale)
    teacher. The main process passes the rung it already loaded; a worker loads it by name."""
    if base is None:
        base, tok = ladder.load_rung(name, progress=False)
    world = ladder.load_world(name)
    rows = pretraining_rows(world, tok, tokens=(s.l6_eval_rows + s.l6_steps * s.l6_batch) * s.l6_seq,
                                   seq_len=s.l6_seq)
    task = knowledge_task(world, tok, attributes=s.attributes, fmt=s.fmt)
    env = {"name": name, "s": s, "base": base.eval(), "tok": tok, "world": world, "task": task,
           "shuffled_train": shuffled_answers(task["train"], s.l6_shuffle_seed),
           "l6_eval": rows[:s.l6_eval_rows], "l6_train": rows[s.l6_eval_rows:],
           "ids": tokens(base, 4, 32, seed=7), "w0": c_attn_weights(base)}
    if plant_scale is not None:
        env["teacher"] = plant(base, min(s.l6_k, width(base)), plant_scale, env["l6_eval"], target=s.l6_target)[0]
    return env


def do_job(job: Job) -> dict:
    """Run one job on the environment of this process (bench.jobs.ENV)."""
    if job.kind == "planted":
        return planted_job(bench_jobs.ENV, job.method, job.r, job.seed)
    return knowledge_job(bench_jobs.ENV, job.method, job.r, job.seed, lr=job.lr or None,
                         split="validation" if job.kind == "search" else "test", shuffled=job.kind == "shuffled")
