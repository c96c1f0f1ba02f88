"""One run of the sweep: fine-tune a copy of the rung with one method (one call of `bench.train.train`: the same
AdamW loop, warmup + cosine schedule, clipping and batching for every method), score it, record its rows; the
zero-shot baselines; the learning-rate search's choice; the job cache's code hash.

Every run fixes its own seeds (the method's init: torch.manual_seed(seed); the batch order: TrainConfig.seed), so its
numbers do not depend on the process it runs in, nor on the runs before it.
"""

from __future__ import annotations

import copy
import hashlib
import math
import time
from pathlib import Path

import torch

from bench.ladder import cache_root
from bench.methods import apply, make_config, trainable_parameters
from bench.timing import timing_params
from bench.train import TrainConfig, answer_loss_eval, evaluate_classification, evaluate_generation, train
from reproductions.scale.models import Rung, describe
from reproductions.scale.settings import CLASSIFICATION, METRIC, ZERO_SHOT, Settings


def stored_params(model, method: str, base_params: int) -> int:
    """What one task has to store: the whole model (full), else the trained tensors in serving form (prefix and
    P-tuning folded: the prefix / prompt alone, without the training-time MLP / encoder)."""
    if method == "full":
        return base_params
    if method in ("prefix", "ptuning"):
        model.fold()
    return trainable_parameters(model)[0]


def fit(rc: Rung, task: str, method: str, kw: dict, rows, s: Settings, lr: float, seed: int):
    """Fine-tune a copy of the rung until its validation answer loss stops improving (Settings.patience evaluations
    without a drop of more than min_delta, never before min_frac of the cap) or the task's cap; the best
    evaluation's weights are kept. Returns
    (model, TrainResult). The seed fixes the method's init and the batch order."""
    cap, batch, every = s.steps(task)
    model = copy.deepcopy(rc.model)
    torch.manual_seed(seed)
    model = apply(model, make_config(method, **kw))
    cfg = TrainConfig(lr=lr, steps=cap, batch_size=batch, warmup=min(s.warmup, max(1, cap // 10)), seed=seed,
                      progress=False, device="auto", desc=f"{rc.name} {task} {method}", eval_every=every,
                      patience=s.patience, min_delta=s.min_delta, min_steps=int(s.min_frac * cap), monitor="val_loss",
                      restore_best=True)
    return model, train(model, rows, cfg, eval_fn=answer_loss_eval(val_rows(rc, task)))


def val_rows(rc: Rung, task: str) -> list[dict]:
    """The validation people's rows (input_ids, labels) early stopping and the lr search read."""
    v = rc.data[task]["val"]
    return v if isinstance(v, list) else v.select_columns(["input_ids", "labels"]).to_list()


def curve(res) -> list[list[float]]:
    """[[step, mean training loss since the previous evaluation, validation answer loss]] per evaluation."""
    out, prev = [], 0
    losses = {h["step"]: h["loss"] for h in res.history if "loss" in h}
    for step, val in res.val_curve:
        window = [v for k, v in losses.items() if prev <= k < step]      # history steps count from 0
        out.append([int(step), round(float(sum(window) / len(window)), 5) if window else math.nan, round(float(val), 5)])
        prev = step
    return out


def score(rc: Rung, task: str, model) -> dict:
    """Test people: accuracy over the candidates (knowledge, next month); d2t BLEU, exact and attribute match (0-1)."""
    if task in CLASSIFICATION:
        return {"accuracy": evaluate_classification(model, rc.data[task]["test"])}
    g = evaluate_generation(model, rc.tok, rc.data[task]["test"], max_new_tokens=rc.max_new)
    return {k: g[k] for k in ("bleu", "exact_match", "attribute_match")}


def val_scores(rc: Rung, task: str, model, res) -> dict:
    """What the lr search selects on: the best validation answer loss (nats/token) and, for the classification
    tasks, the validation accuracy of the kept (best) weights."""
    out = {"val_loss": float(res.best_value), "steps": int(res.steps_done),
           "still_improving": bool(res.still_improving)}
    if task in CLASSIFICATION:
        out["val_accuracy"] = evaluate_classification(model, rc.data[task]["val"])
    return out


def zero_shot(rec, rc: Rung, task: str, phase: str = "zeroshot") -> None:
    """The hand-written prompt on the frozen model (no training), and the task's chance level."""
    p = {"phase": phase, "task": task, "rung_params": rc.params}
    if task in CLASSIFICATION:
        d, n_test = rc.data[task], {"n_test": len(rc.data[task]["test"])}
        hand, frozen = ("discrete", "table") if task == "knowledge" else (d.get("hand_prompt", "cue"), "cue")
        rec.add("-", "accuracy", evaluate_classification(rc.model, d["handwritten"]), unit="accuracy", model=rc.name,
                data=rc.names[task], method=ZERO_SHOT, scale=rc.scale, params={**p, "prompt": hand}, info=n_test)
        if task == "knowledge":    # next month's hand-written prompt is its own input: one row
            rec.add("-", "accuracy", evaluate_classification(rc.model, d["test"]), unit="accuracy", model=rc.name,
                    data=rc.names[task], method="frozen", scale=rc.scale, params={**p, "prompt": frozen}, info=n_test)
        rec.add("-", "knowledge_chance" if task == "knowledge" else "chance", d["chance"], unit="accuracy",
                model=rc.name, data=rc.names[task], scale="exact", params={"rung_params": rc.params, "task": task})
    else:
        for k, v in score(rc, task, rc.model).items():
            rec.add("-", k, v, unit="0-1", model=rc.name, data=rc.names[task], method=ZERO_SHOT, scale=rc.scale,
                    params={**p, "prompt": "<table> sentence :"})


def record_run(rec, rc: Rung, task: str, method: str, kw: dict, rows, s: Settings, lr: float, seed: int,
               extra: dict, claim: str = "-"):
    """Train, score and record one run (scores, training loss at the kept step, best validation loss, steps used,
    early-stopping flags, divergence, trainable / stored parameters, wall and step time; the loss curves in info);
    returns (trained model, TrainResult)."""
    t0 = time.perf_counter()
    model, res = fit(rc, task, method, kw, rows, s, lr, seed)
    trainable = trainable_parameters(model)[0]
    diverged = res.diverged_at is not None
    scores = score(rc, task, model) if not diverged else {METRIC[task]: math.nan}
    stored = stored_params(model, method, rc.params)
    cap, batch, every = s.steps(task)
    p = {**extra, "task": task, "steps": cap, "batch": batch, "eval_every": every, "patience": s.patience,
         "min_delta": s.min_delta, "rung_params": rc.params, "n_train": len(rows), **describe(kw)}
    # the searched lr is a measured choice: never part of the row's identity. n_test sizes the binomial error of
    # an accuracy (bench.report reads it); BLEU is no proportion, so d2t rows carry none
    info = {"lr": lr} | ({"n_test": len(rc.data[task]["test"])} if task in CLASSIFICATION else {})
    row = dict(model=rc.name, data=rc.names[task], method=method, seed=seed)
    for k, v in scores.items():
        rec.add(claim, k, v, unit="accuracy" if k == "accuracy" else "0-1", scale=rc.scale, params=p, info=info, **row)
    loss = res.train_loss_at_best if math.isfinite(res.train_loss_at_best) else res.final.get("final_loss", math.nan)
    nan = math.nan
    for metric, value, unit in (
            ("final_train_loss", nan if diverged else loss, "nats/token"),
            ("val_loss_best", nan if diverged else res.best_value, "nats/token"),
            ("steps_used", res.steps_done, "steps"), ("best_step", res.best_step or 0, "steps"),
            ("stopped_early", int(res.stopped_early), "flag"),
            ("still_improving_at_cap", int(diverged or bool(res.still_improving)), "flag"),   # diverged: not converged
            ("diverged", int(diverged), "bool")):
        rec.add(claim, metric, value, unit=unit, scale=rc.scale, params=p,
                info=info | ({"curve": curve(res)} if metric == "steps_used" else {}), **row)
    for metric, value, unit in (("trainable_params", trainable, "params"), ("stored_params", stored, "params"),
                                ("stored_pct", 100.0 * stored / rc.params, "%")):
        rec.add(claim, metric, value, unit=unit, scale="exact", params=p, info=info, **row)
    tp = timing_params(**p)
    rec.add(claim, "run_wall_s", time.perf_counter() - t0, unit="s", params=tp, timing=True, **row)
    rec.add(claim, "step_time_s", res.step_time_s, unit="s", params=tp, timing=True, **row)
    return model, res


# ============================================================================================ lr search

def job_cache_dir() -> Path:
    return cache_root().parent / "scale" / "jobs"


_CODE = ("reproductions/scale/fitting.py", "reproductions/scale/models.py", "bench/train.py", "bench/methods",
         "bench/data", "bench/models.py")   # jobs.py: its JOB_VERSION


def code_hash() -> str:
    """sha256 (16 hex) of the code a job runs: a cached job is reused only by the code that made it."""
    root = Path(__file__).resolve().parents[2]
    h = hashlib.sha256()
    for rel in _CODE:
        for f in sorted((root / rel).rglob("*.py")) if (root / rel).is_dir() else [root / rel]:
            h.update(f.relative_to(root).as_posix().encode() + f.read_bytes())
    return h.hexdigest()[:16]


def choose(points: list[dict], task: str) -> float:
    """The selected lr: knowledge by validation accuracy (ties: lower loss), d2t by loss; NaN never wins."""
    ok = [p for p in points if math.isfinite(p["val_loss"])]
    if not ok:
        return min(p["lr"] for p in points)
    if task in CLASSIFICATION:
        return max(ok, key=lambda p: (p["val_accuracy"], -p["val_loss"], -p["lr"]))["lr"]
    return min(ok, key=lambda p: (p["val_loss"], p["lr"]))["lr"]
