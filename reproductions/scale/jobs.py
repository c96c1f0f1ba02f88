"""The sweep's units of work, run by `bench.jobs.JobRunner` in this process or in spawned workers.

Every training run (and each rung's zero-shot scoring) is a `Job` naming the rung and what to do. A job records
its rows into a `bench.jobs.RowBuffer`; the buffers are replayed into the Recorder in plan order, so results.csv
does not depend on how many processes ran the jobs or in which order they finished. Each job fixes its own seeds
(see reproductions.scale.fitting), so a job's numbers do not depend on the process either (tested: workers=1 and
workers=2 give the same results.csv).
"""

from __future__ import annotations

import math
import random
from typing import NamedTuple

from bench.jobs import ENV, RowBuffer
from bench.methods.lora import lora_layers
from bench.repro import RunContext
from reproductions.scale.fitting import fit, record_run, val_scores, zero_shot
from reproductions.scale.models import Rung, load_rung
from reproductions.scale.settings import Settings


class Job(NamedTuple):
    """One unit of work. zeroshot: the hand-written prompt / frozen model on (rung, task); search: one lr grid
    point, returns validation scores; fit: train, score and record one run (keep: also return the trained
    prompt / LoRA weights for P4)."""
    kind: str                      # "zeroshot" | "search" | "fit"
    rung: str
    task: str
    method: str = ""
    kw: dict | None = None         # method_kwargs
    lr: float = 0.0
    seed: int = 0
    steps: int = 0
    batch: int = 0
    low_data: int | None = None    # fit on a fixed random subset of this many training rows
    extra: dict | None = None      # row params (phase, ...)
    claim: str = "-"
    keep: bool = False


def job_env(ctx: RunContext, s: Settings, methods: list) -> dict:
    """The JobRunner's setup: what a process running jobs holds (its loaded rung comes on first use)."""
    return dict(ctx=ctx, s=s, methods=methods, rungs={})


def _job_rung(name: str) -> Rung:
    rungs = ENV["rungs"]
    if name not in rungs:
        rungs.clear()           # jobs come rung by rung: keep one loaded
        rungs[name] = load_rung(name, ENV["ctx"], ENV["s"], ENV["methods"])
    return rungs[name]


def do_job(job: Job):
    """Run one job in this process; returns what the main process needs: zeroshot (RowBuffer, None); search the
    grid point's {"lr", "val_loss"[, "val_accuracy"]}; fit (RowBuffer, kept part or None)."""
    rc = _job_rung(job.rung)
    if job.kind == "zeroshot":
        buf = RowBuffer()
        zero_shot(buf, rc, job.task)
        return buf, None
    rows = rc.data[job.task]["train"]
    if job.kind == "search":
        model, res = fit(rc, job.task, job.method, job.kw, rows, job.steps, job.batch, job.lr, job.seed)
        v = val_scores(rc, job.task, model) if res.diverged_at is None else {"val_loss": math.nan, "val_accuracy": math.nan}
        return {"lr": job.lr, **v}
    if job.low_data is not None:
        rows = random.Random(f"lowdata-{job.low_data}-{job.seed}").sample(rows, job.low_data)
    buf = RowBuffer()
    model = record_run(buf, rc, job.task, job.method, job.kw, rows, job.steps, job.batch, job.lr, job.seed,
                       job.extra, job.claim)
    kept = None
    if job.keep and job.method == "prompt":
        kept = model.prompt.detach().cpu().clone()
    elif job.keep and job.method == "lora":
        kept = {n: (l.lora_A.weight.detach().cpu().clone(), l.lora_B.weight.detach().cpu().clone())
                for n, l in lora_layers(model)}
    return buf, kept


def label(job: Job) -> str:
    """The job for the progress bar."""
    if job.kind == "zeroshot":
        return f"{job.rung} {job.task} zero-shot"
    if job.kind == "search":
        return f"lr search {job.rung} {job.task} {job.method} lr={job.lr:g}"
    if job.low_data is not None:
        return f"{job.rung} low-data {job.low_data} {job.method} seed={job.seed}"
    if job.extra.get("phase") == "ablation":
        return f"{job.rung} ablation n={job.kw['num_virtual_tokens']} init={job.kw['init']} seed={job.seed}"
    return f"{job.rung} {job.task} {job.method} seed={job.seed}"
