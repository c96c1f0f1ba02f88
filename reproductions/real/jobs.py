"""The training runs as bench.jobs jobs: each (method, seed, r) trains in this process or in a spawned worker
(bench.jobs.JobRunner, one torch thread each by the suite's policy); results come back in plan order, so the
number of workers never changes results.csv.

Each process measures the training memory and file bytes of a (method, r) once, on its first run of it (the
values depend on shapes only), and keeps the fully fine-tuned weights of the first seed for int8 (Q4).
"""

from __future__ import annotations

import copy

import torch

from bench import jobs as bench_jobs
from bench import realmodel
from bench.data import rotten_tomatoes as rt
from bench.jobs import JobRunner
from reproductions.real.evaluate import file_bytes, merge_check, train_memory_bytes
from reproductions.real.settings import MAIN_R, Settings
from reproductions.real.training import train_one


def load_data(s: Settings, tok):
    """(the train / validation / test splits tokenized and subsampled, the split sizes before subsampling)."""
    dd = rt.load(tok, s.split_seed, s.max_length)
    full_sizes = {k: len(v) for k, v in dd.items()}
    dd["train"] = rt.subsample(dd["train"], s.train_rows, s.split_seed)
    dd["validation"] = rt.subsample(dd["validation"], s.val_rows, s.split_seed)
    dd["test"] = rt.subsample(dd["test"], s.test_rows, s.split_seed)
    return dd, full_sizes


def job_env(s: Settings, encoder=None, data=None) -> dict:
    """What every job reads (bench.jobs.ENV): settings, the pretrained encoder, the data, a per-process cache
    of (method, r) -> (memory, file bytes). A worker loads the encoder and the data itself."""
    if encoder is None:
        encoder, tok = realmodel.load_encoder()
        data = load_data(s, tok)[0]
    return {"s": s, "encoder": encoder, "data": data, "mem": {}}


def plan(s: Settings, seeds) -> list[tuple]:
    """The jobs (method, seed, r, first seed): every method on every seed, then the LoRA ranks of the sweep
    on the first `rank_seeds` seeds (the main rank runs once, in the first part)."""
    runs = [(m, sd, None) for m in s.methods for sd in seeds]
    runs += [("lora", sd, r) for r in s.ranks for sd in seeds[:s.rank_seeds] if r != MAIN_R]
    return [(m, sd, r, seeds[0]) for m, sd, r in runs]


def run_job(job) -> dict:
    """One training run in this process (bench.jobs.ENV from job_env); a picklable result without the model."""
    method, seed, r, first_seed = job
    env = bench_jobs.ENV
    s, encoder, data = env["s"], env["encoder"], env["data"]
    with torch.random.fork_rng(devices=[]):
        res = train_one(encoder, data, method, seed, s, r)
    key = (method, res["r"])
    if key not in env["mem"]:
        env["mem"][key] = (train_memory_bytes(copy.deepcopy(res["model"]), s.memory_batch, s.memory_tokens),
                           file_bytes(res["model"]))
    res["memory"], res["adapter_bytes"] = env["mem"][key]
    if method == "lora" and r is None and seed == first_seed:
        res["merge"] = merge_check(res["model"], data["test"])
    res["full_state"] = res["model"].state_dict() if method == "full" and seed == first_seed else None
    res["model"], res["cfg"] = None, {"layers": encoder.config.num_hidden_layers, "hidden": encoder.config.hidden_size}
    return res


def run_jobs(jobs: list[tuple], s: Settings, workers: int, progress, encoder, data) -> list[dict]:
    """Every job's result, in plan order. In this process (workers <= 1) the jobs share the caller's encoder and
    data; workers load their own."""
    env = job_env(s, encoder, data) if workers <= 1 else None
    try:
        with JobRunner(setup=job_env, args=(s,), workers=workers, env=env) as runner:
            return runner.map(run_job, jobs, progress=progress, desc="real runs")
    finally:
        bench_jobs.ENV.clear()
