"""The sweep's units of work, run by `bench.jobs.JobRunner` in this process or in spawned workers.

Every training run (and each rung's zero-shot scoring) is a `Job` naming the rung and what to do. A job records
its rows into a `bench.jobs.RowBuffer`; the buffers are replayed into the Recorder in plan order, so results.csv
does not depend on how many processes ran the jobs or in which order they finished. Each job fixes its own seeds
(see reproductions.scale.fitting), so a job's numbers do not depend on the process either (tested: workers=1 and
workers=2 give the same results.csv).

Job cache (Settings.job_cache; off in the smoke profile, so the regression gate always measures): a finished
training job is kept under $BENCH_CACHE/../scale/jobs/, keyed by everything its numbers depend on (the job, the
rung's weights hash, the world, the settings it reads (`job_settings`), torch's version and the hash of the code
it runs; JOB_VERSION for this module's own part). A long run that
is stopped resumes where it was; its rows (wall times included) are those measured when the job first ran.
With the local executor a job reads and writes the cache itself (`do_job`); with the dask executor the driver does
(`DriverCache`, passed as JobRunner(cache=...)): a cached job is never dispatched, and a worker on another machine
never writes. A file is written whole under a temporary name and renamed into place (readers see all or nothing).
A deciding run ($BENCH_SCALE_FRESH=1) reads nothing from the cache, so every row is its own, and still writes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import torch
import transformers

from bench.jobs import DRIVER_CACHE, ENV, RowBuffer
from bench.train import resolve_device
from bench.repro import RunContext
from reproductions.scale.fitting import code_hash, job_cache_dir, record_run, val_scores, zero_shot
from reproductions.scale.models import Rung, describe, fingerprint, load_rung, virtual_tokens
from reproductions.scale.settings import JOB_VERSION, Settings


class Job(NamedTuple):
    """One unit of work. zeroshot: the hand-written prompt / frozen model on (rung, task); fit: train (early
    stopping), score and record one run, and return its validation scores (what the lr search selects on)."""
    kind: str                      # "zeroshot" | "fit"
    rung: str
    task: str
    method: str = ""
    kw: dict | None = None         # method_kwargs
    lr: float = 0.0
    seed: int = 0
    low_data: int | None = None    # fit on a fixed random subset of this many training rows
    extra: dict | None = None      # row params (phase, ...)
    claim: str = "-"


def job_env(ctx: RunContext, s: Settings, methods: list) -> dict:
    """The JobRunner's setup: what a process running jobs holds (its loaded rung comes on first use)."""
    return dict(ctx=ctx, s=s, methods=methods, rungs={}, code=code_hash())


def _job_rung(name: str) -> Rung:
    rungs = ENV["rungs"]
    if name not in rungs:
        rungs.clear()           # jobs come rung by rung: keep one loaded
        rungs[name] = load_rung(name, ENV["ctx"], ENV["s"], ENV["methods"])
    return rungs[name]


def cache_path(job: Job) -> Path | None:
    """Where a finished fit job is kept (None: the cache is off for these settings or by $BENCH_SCALE_NO_CACHE)."""
    s: Settings = ENV["s"]
    if not s.job_cache or job.kind != "fit" or os.environ.get("BENCH_SCALE_NO_CACHE"):
        return None
    rc = _job_rung(job.rung)
    blob = {"v": JOB_VERSION, "job": {**job._asdict(), "kw": describe(job.kw or {})}, "label_ids": rc.label_ids,
            "weights": fingerprint(job.rung, ENV["ctx"].profile.ladder), "world": rc.world.fingerprint(),
            "settings": job_settings(job_settings_of(job, s), job.task, ENV["methods"]),
            "torch": torch.__version__, "transformers": transformers.__version__, "device": resolve_device("auto").type,
            "code": ENV["code"], "d2t_data": _d2t_source()}
    key = hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:24]
    return job_cache_dir() / f"{Path(job.rung).name}-{job.task}-{job.method}-{key}.pt"   # rung: maybe a folder


def job_settings_of(job: Job, s: Settings) -> Settings:
    """The settings a fit job trains under: the profile's, with the task's cap replaced where the sweep gave the job
    its own (extra["cap"], from Settings.caps), and for a short lr-search point (extra["search_steps"]) that many
    steps with no early stop (min_frac 1). A job with neither keeps its cache key."""
    extra = job.extra or {}
    out = s.with_cap(job.task, extra.get("cap"))
    if extra.get("search_steps") is not None:
        out = replace(out.with_cap(job.task, extra["search_steps"]), min_frac=1.0)
    return out


def job_settings(s: Settings, task: str, methods) -> dict:
    """The settings a fit job's numbers depend on (the cache key's part): the task's budget and stopping rule, its
    data sizes, and for d2t the positions the methods' virtual tokens leave. What the plan runs (methods, rungs,
    seeds, sizes of the low-data run, ablations, replica) is not in it: a smaller plan reuses a larger one's
    runs."""
    out = {"steps": s.steps(task), "patience": s.patience, "min_delta": s.min_delta, "min_frac": s.min_frac,
           "warmup": s.warmup}
    if task == "d2t":
        out.update(per_person=s.per_person, d_eval_rows=s.d_eval_rows, d_val_rows=s.d_val_rows,
                   max_new_tokens=s.max_new_tokens, virtual=virtual_tokens(s, methods))
    elif task == "nextmonth":
        out.update(n_per_person=s.n_per_person)
    return out


def _d2t_source() -> str | None:
    """The user's data-to-text set (path and its files' sizes and times), None for the world's."""
    user = (ENV["ctx"].options or {}).get("d2t_data") or os.environ.get("BENCH_SCALE_D2T")
    if not user:
        return None
    files = sorted(p for p in Path(user).expanduser().rglob("*") if p.is_file())
    return json.dumps([str(user)] + [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files])


def do_job(job: Job):
    """Run one job in this process (or take it from the job cache); returns what the main process needs:
    zeroshot (RowBuffer, None, False); fit (RowBuffer, validation scores, from cache).
    Where the driver keeps the cache (ENV[DRIVER_CACHE]) the job only runs."""
    path = None if ENV.get(DRIVER_CACHE) else cache_path(job)
    hit = _load(path)
    if hit is not None:
        return hit
    out = _run(job)
    _store(path, out)
    return (*out, False)


def _load(path: Path | None):
    """A cached job's (RowBuffer, scores, True), or None (no file, a torn one, or $BENCH_SCALE_FRESH set)."""
    if path is not None and not os.environ.get("BENCH_SCALE_FRESH") and path.exists():
        try:
            return (*torch.load(path, weights_only=False)[:2], True)
        except Exception:  # noqa: BLE001 - a torn or stale file: run the job again
            pass
    return None


def _store(path: Path | None, out) -> None:
    """Write `out` whole under a name of this host and process, then rename it into place (atomic on one
    filesystem; drivers sharing the cache each write a job they both ran, the last rename wins)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp-{os.uname().nodename}-{os.getpid()}")
    torch.save(out, tmp)
    os.replace(tmp, path)


class DriverCache:
    """The job cache as the driver consults it (bench.jobs.JobCache; the dask executor): keys from the driver's
    own ENV (its setup ran there too), so workers need neither the cache nor a shared disk."""

    def get(self, job: Job):
        return _load(cache_path(job))

    def put(self, job: Job, result) -> None:
        if not result[2]:
            _store(cache_path(job), result[:2])


def _run(job: Job):
    rc = _job_rung(job.rung)
    if job.kind == "zeroshot":
        buf = RowBuffer()
        zero_shot(buf, rc, job.task, **({"phase": job.extra["phase"]} if job.extra else {}))
        return buf, None
    rows = rc.data[job.task]["train"]
    if job.low_data is not None:
        rows = random.Random(f"lowdata-{job.low_data}-{job.seed}").sample(rows, job.low_data)
    buf = RowBuffer()
    extra = {k: v for k, v in (job.extra or {}).items() if k not in ("cap", "search_steps")}   # rows: "steps"
    model, res = record_run(buf, rc, job.task, job.method, job.kw, rows, job_settings_of(job, ENV["s"]), job.lr,
                            job.seed, extra, job.claim)
    val = val_scores(rc, job.task, model, res) if res.diverged_at is None else {"val_loss": float("nan")}
    return buf, {"lr": job.lr, **val}


def label(job: Job) -> str:
    """The job for the progress bar."""
    if job.kind == "zeroshot":
        return f"{job.rung} {job.task} zero-shot"
    phase = (job.extra or {}).get("phase")
    if job.low_data is not None:
        return f"{job.rung} low-data {job.low_data} {job.method} seed={job.seed}"
    if phase == "ablation":
        return f"{job.rung} ablation n={job.kw['num_virtual_tokens']} init={job.kw['init']} seed={job.seed}"
    return f"{job.rung} {job.task} {job.method} lr={job.lr:g} seed={job.seed}"
