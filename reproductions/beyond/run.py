"""The beyond group's run: design rows first (design.py: the plan's power, before anything trains), then every
(arm, rank, seed) as one job of `bench.jobs.JobRunner` (in `workers` spawned one-thread processes), then the rows the
claims decide on, and X2's memory prediction (bench.fit.predict on a LLaMA-65B config, meta device).

Each run: a copy of the rung with the arm's method applied (torch.manual_seed(seed) before `apply`: the method's
init), trained by `bench.train.train` (the suite's one loop) for the fixed budget, validation answer loss every
`eval_every` steps; then test accuracy and test answer loss. The task and scoring are the scale group's
(reproductions.scale.models.load_rung, reproductions.scale.fitting.score / val_rows).
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, replace
from typing import NamedTuple

import numpy as np
import torch

from bench import BenchError
from bench.jobs import ENV, JobRunner, RowBuffer, job_workers, threads_per_worker
from bench.methods import apply, make_config
from bench.repro import RunContext
from bench.schema import Recorder
from bench.train import TrainConfig, answer_loss, answer_loss_eval, num_threads, train
from reproductions.beyond import design
from reproductions.beyond.settings import ARMS, CLAIMS, GROUP, TASK, Settings, lr_of, settings_for
from reproductions.scale.fitting import score, val_rows
from reproductions.scale.models import load_rung
from reproductions.scale.settings import Settings as ScaleSettings

LLAMA_65B = dict(hidden_size=8192, num_hidden_layers=80, num_attention_heads=64, intermediate_size=22016,
                 vocab_size=32000, max_position_embeddings=2048)   # LLaMA-65B (Touvron et al. 2023, Table 2)
X2_TARGETS = ".*(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"   # QLoRA: every Linear of the blocks


class Job(NamedTuple):
    arm: str
    r: int
    seed: int


def _env(ctx: RunContext, s: Settings) -> dict:
    rc = load_rung(s.rung, ctx, ScaleSettings(tasks=(TASK,), n_per_person=s.n_per_person), ["lora"])
    if TASK not in rc.data:
        raise BenchError(f"beyond: {s.rung} cannot build the next-month task: {'; '.join(rc.notes)}")
    return {"rc": rc, "s": s}


def steps_to(curve: list[tuple[int, float]], target: float, cap: int) -> tuple[int, int]:
    """(steps, reached): the first evaluation's step whose validation loss is <= target; (cap, 0) when none is."""
    for step, loss in curve:
        if loss <= target:
            return int(step), 1
    return int(cap), 0


def do_job(job: Job):
    """Train one (arm, rank, seed) run; returns (RowBuffer of its per-run rows, its validation curve)."""
    rc, s = ENV["rc"], ENV["s"]
    method, plus = ARMS[job.arm]
    t0 = time.perf_counter()
    model = copy.deepcopy(rc.model)
    torch.manual_seed(job.seed)
    model = apply(model, make_config(method, r=job.r, alpha=s.alpha))
    cfg = TrainConfig(lr=lr_of(s, job.arm), steps=s.steps, batch_size=s.batch, warmup=min(s.warmup, max(1, s.steps // 10)),
                      seed=job.seed, progress=False, eval_every=s.eval_every, device="auto",
                      loraplus_ratio=s.loraplus_ratio if plus else None, desc=f"{job.arm} r={job.r}")
    res = train(model, rc.data[TASK]["train"], cfg, eval_fn=answer_loss_eval(val_rows(rc, TASK)))
    curve = [(int(h["step"]) + 1, float(h["val_loss"])) for h in res.history if "val_loss" in h]
    diverged = res.diverged_at is not None
    if not diverged and "val_loss" in res.final and (not curve or curve[-1][0] != res.steps_done):
        curve.append((res.steps_done, float(res.final["val_loss"])))
    steps, reached = steps_to(curve, s.target_loss, s.steps)
    nan = math.nan
    acc = nan if diverged else score(rc, TASK, model)["accuracy"]
    test_rows = rc.data[TASK]["test"].select_columns(["input_ids", "labels"]).to_list()
    test_loss = nan if diverged else answer_loss(model, test_rows)
    p = {"task": TASK, "phase": "main", "r": job.r, "steps": s.steps, "batch": s.batch, "eval_every": s.eval_every,
         "target_loss": s.target_loss, "rung_params": rc.params, "alpha": s.alpha,
         **({"loraplus_ratio": s.loraplus_ratio} if plus else {})}
    info = {"lr": lr_of(s, job.arm), "n_test": len(rc.data[TASK]["test"])}
    row = dict(model=rc.name, data=rc.names[TASK], method=job.arm, seed=job.seed, scale=rc.scale, params=p)
    buf = RowBuffer()
    buf.add("-", "accuracy", acc, unit="accuracy", info=info, **row)
    buf.add("-", "test_answer_loss", test_loss, unit="nats/token", info=info, **row)
    buf.add("-", "val_loss_final", curve[-1][1] if curve and not diverged else nan, unit="nats/token", info=info, **row)
    buf.add("-", "steps_to_target", steps, unit="steps", info=info | {"curve": curve}, **row)
    buf.add("-", "reached_target", reached, unit="flag", info=info, **row)
    buf.add("-", "final_train_loss", nan if diverged else res.final.get("final_loss", nan), unit="nats/token",
            info=info, **row)
    buf.add("-", "diverged", int(diverged), unit="bool", info=info, **row)
    buf.add("-", "trainable_params", res.trainable_params, unit="params", info=info, **{**row, "scale": "exact"})
    buf.add("-", "run_wall_s", time.perf_counter() - t0, unit="s", timing=True,
            **{k: v for k, v in row.items() if k != "scale"})
    return buf, curve


def run(ctx: RunContext) -> Recorder:
    """The group's run (module doc); BenchError on bad input before anything trains."""
    s = settings_for(ctx)
    seeds = tuple(ctx.seeds) if len(ctx.seeds) >= s.seeds else tuple(range(s.seeds))   # the design's count at least
    rec = ctx.recorder(GROUP, CLAIMS)
    design.record(rec, replace(s, seeds=len(seeds)))   # the plan's power per part, before any run
    if s.memory:
        memory_rows(rec)
    jobs = [Job(a, r, seed) for a, r in s.runs for seed in seeds]
    threads, workers = threads_per_worker(), job_workers(s.workers)
    with num_threads(threads), JobRunner(_env, (ctx, s), workers) as runner:
        out = runner.map(do_job, jobs, progress=ctx.progress, desc="beyond runs")
    for buf, _ in out:
        buf.replay(rec)
    derive(rec, s)
    rec.notes.update({"threads": threads, "workers": workers, "seeds": list(seeds), "settings": asdict(s)})
    return rec


def _values(rec, metric: str, arm: str, r: int) -> list[float]:
    """The per-run values of `metric` for (arm, rank) recorded so far."""
    return [row["value"] for row in rec.rows
            if row["metric"] == metric and row["method"] == arm and json.loads(row["params"] or "{}").get("r") == r]


def derive(rec, s: Settings) -> None:
    """The claims' derived rows (point values and precondition facts) from the per-run rows."""
    ranks = sorted({r for _, r in s.runs})
    for r in ranks:
        acc = _values(rec, "accuracy", "lora", r)
        if acc:
            for cid in ("X1", "X3", "X4", "X5"):
                rec.add(cid, "beyond_lora_accuracy", float(np.nanmean(acc)), unit="accuracy (seed mean)",
                        params={"r": r, "task": TASK})
    for cid, other in (("X4", "pissa"), ("X5", "loraplus")):
        flags = _values(rec, "reached_target", "lora", 1) + _values(rec, "reached_target", other, 1)
        if flags:
            rec.add(cid, "beyond_reached_target", min(flags), unit="flag (min over runs)",
                    params={"r": 1, "task": TASK, "arms": f"lora,{other}"})
    gains = {}
    for r in ranks:
        d, lo = _values(rec, "accuracy", "dora", r), _values(rec, "accuracy", "lora", r)
        if d and lo:
            gains[r] = float(np.nanmean(d) - np.nanmean(lo))
            rec.add("X3", "x3_dora_gain", gains[r], unit="accuracy", params={"r": r, "task": TASK})
    if 1 in gains and 2 in gains:
        rec.add("X3", "x3_gain_low_minus_high", gains[1] - gains[2], unit="accuracy", params={"ranks": "1,2"})


def memory_rows(rec) -> None:
    """X2: predicted peak training bytes of a LLaMA-65B config, QLoRA and 16-bit LoRA (r = 64, alpha 16 on every
    block Linear, bf16, AdamW, batch 1 x 512 tokens, gradient checkpointing, CUDA)."""
    from transformers import LlamaConfig

    from bench.fit.predict import predict
    cfg = LlamaConfig(**LLAMA_65B)
    sets = ["r=64", "alpha=16", f"target_modules={X2_TARGETS}"]
    for method in ("qlora", "lora"):
        pred = predict(cfg, method, sets, precision="bf16", batch=1, seq=512, checkpointing=True, device="cuda")
        mem = pred["method"]
        p = {"model": "llama-65b", "r": 64, "alpha": 16, "precision": "bf16", "batch": 1, "seq": 512,
             "checkpointing": True}
        parts = {k: float(getattr(mem, k)) for k in ("weights", "gradients", "optimizer", "activations",
                                                      "int8_overhead", "transient")}
        rec.add("X2", "x2_peak_bytes", float(mem.peak), unit="bytes", model="llama-65b", method=method, scale="exact",
                params=p, info={"parts": parts, "trainable_params": pred["trainable_params"],
                                "assumptions": mem.assumptions})
        rec.add("X2", "x2_weight_bytes", parts["weights"], unit="bytes", model="llama-65b", method=method,
                scale="exact", params=p)
