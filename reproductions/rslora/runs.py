"""One training run as a job of `bench.jobs.JobRunner`, and the rows it becomes in results.csv.

A job trains in a worker (`run_job`, reading `bench.jobs.ENV` from sweep.make_env) and returns plain data; the
main process turns it into rows (`record_run`) in plan order, so results.csv never depends on the worker count,
and a result can stand for another job that trains the same way (a tuned run at one of the main lrs).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from bench import jobs
from bench.schema import Recorder
from reproductions.rslora.measure import roughness, train_one
from reproductions.rslora.settings import Settings

UNITS = {"final_heldout_loss": "nats/token", "final_train_loss": "nats/token", "train_loss_roughness": "nats/token"}
ROLES = ("main", "second", "search", "tuned")   # the lrs' first / others, a search grid point, a rank's pick


class Job(NamedTuple):
    """One training run; a plan is a list of these in the order results.csv shows them."""
    lr: float
    r: int
    seed: int
    method: str
    role: str = "main"        # one of ROLES; recorded as params lr_role
    split: str = "test"       # held-out batches scored: "test" people, or "validation" people (search only)


def train_key(job: Job) -> tuple:
    """What decides a run's numbers: two jobs with the same key train and score identically (role is a label)."""
    return job.lr, job.r, job.seed, job.method, job.split


def run_values(out: dict) -> dict[str, float]:
    """One run's per-run metrics: final losses (NaN when it diverged), step means of the norms, roughness.
    final_heldout_loss is scored on the job's split (the validation loss for a search run)."""
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
    """Train one run (bench.jobs.ENV from sweep.make_env); returns picklable data: values (run_values), the
    counts and scalings `record_run` writes, wall times, and curves (curves.csv rows; main/second runs only)."""
    env = jobs.ENV
    s, threads = env["s"], jobs.threads_per_worker()
    held = env["val_batches"] if job.split == "validation" else env["heldout_batches"]
    out = train_one(env["base"], env["train_rows"], held, job.method, job.r, job.seed, job.lr, s, threads)
    res = out["result"]
    return {"values": run_values(out), "diverged": int(res.diverged_at is not None), "steps_done": res.steps_done,
            "trainable_params": out["trainable_params"], "scalings": out["scalings"],
            "expected_scaling": out["expected_scaling"], "step_time_s": res.step_time_s, "wall_s": res.wall_s,
            "threads": threads, "curves": out["curves"] if job.role in ("main", "second") else []}


def run_params(job: Job, s: Settings) -> tuple[dict, dict]:
    """(params, info) of a job's rows. A tuned run's lr was picked by a measurement (another CPU kind may pick
    another), so it goes into info, never into the row's identity; every other role's lr is a setting."""
    p = {"r": job.r, "alpha": s.alpha, "lr": job.lr, "lr_role": job.role, "steps": s.steps, "batch": s.batch,
         "targets": ",".join(s.targets) if s.targets else "default"}
    if job.role == "tuned":
        return {k: v for k, v in p.items() if k != "lr"}, {"lr": job.lr}
    return p, {}


def record_run(rec: Recorder, job: Job, res: dict, s: Settings, name: str, data: str, timings: bool = True) -> None:
    """One run's rows (claim L7): the per-run metrics, divergence, counts, the scaling and its error, and (unless
    `timings` is False: a result reused from another job, whose wall time that job's rows hold) its timings."""
    p, info = run_params(job, s)
    ident = dict(model=name, data=data, method=job.method, seed=job.seed, info=info)

    def add(metric, value, unit, params=p, **kw):
        rec.add("L7", metric, value, unit=unit, params=params, **ident, **kw)

    for k, v in res["values"].items():
        add(k, v, UNITS.get(k, "norm"))
    add("diverged", res["diverged"], "bool")
    add("steps_done", res["steps_done"], "steps")
    add("trainable_params", res["trainable_params"], "params")
    add("scaling_applied", res["scalings"][0], "ratio")
    exp = res["expected_scaling"]
    add("scaling_rel_err", max(abs(x - exp) / exp for x in res["scalings"]), "ratio")
    if timings:
        add("step_time_s", res["step_time_s"], "s", params={**p, "threads": res["threads"]}, timing=True)
        add("run_wall_s", res["wall_s"], "s", params={**p, "threads": res["threads"]}, timing=True)


def per_run_rows(job: Job, res: dict) -> list[dict]:
    """The per-run frame's rows of one run (derive.py's input): lr, method, r, seed, metric, value."""
    return [{"lr": job.lr, "method": job.method, "r": job.r, "seed": job.seed, "metric": k, "value": v}
            for k, v in res["values"].items()]
