"""One run of the sweep: fine-tune a copy of the rung with one method (one call of `bench.train.train`: the same
AdamW loop, warmup + cosine schedule, clipping and batching for every method), score it, record its rows; the
zero-shot baselines; and the learning-rate search's choice and cache.

Every run fixes its own seeds (the method's init: torch.manual_seed(seed); the batch order: TrainConfig.seed), so its
numbers do not depend on the process it runs in, nor on the runs before it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from pathlib import Path

import torch

from bench.fileio import atomic_write_json
from bench.ladder import cache_root
from bench.methods import apply, make_config, trainable_parameters
from bench.timing import timing_params
from bench.train import TrainConfig, evaluate_classification, evaluate_generation, perplexity, train
from reproductions.scale.models import Rung, describe, virtual_tokens
from reproductions.scale.settings import METRIC, SEARCH_VERSION, ZERO_SHOT, Settings, grid


def stored_params(model, method: str, base_params: int) -> int:
    """What one task has to store: the whole model (full), else the trained tensors in serving form (prefix and
    P-tuning folded: the prefix / prompt alone, without the training-time MLP / encoder)."""
    if method == "full":
        return base_params
    if method in ("prefix", "ptuning"):
        model.fold()
    return trainable_parameters(model)[0]


def fit(rc: Rung, task: str, method: str, kw: dict, rows, steps: int, batch: int, lr: float, seed: int):
    """Fine-tune a copy of the rung; returns (model, TrainResult). The seed fixes the method's init and the batch order."""
    model = copy.deepcopy(rc.model)
    torch.manual_seed(seed)
    model = apply(model, make_config(method, **kw))
    cfg = TrainConfig(lr=lr, steps=steps, batch_size=batch, warmup=max(1, steps // 10), seed=seed, progress=False,
                      device="auto", desc=f"{rc.name} {task} {method}")
    return model, train(model, rows, cfg)


def score(rc: Rung, task: str, model) -> dict:
    """Test people: knowledge accuracy over the attribute's values; d2t BLEU, exact and attribute match (0-1)."""
    if task == "knowledge":
        return {"accuracy": evaluate_classification(model, rc.data[task]["test"])}
    g = evaluate_generation(model, rc.tok, rc.data[task]["test"], max_new_tokens=rc.max_new)
    return {k: g[k] for k in ("bleu", "exact_match", "attribute_match")}


def val_scores(rc: Rung, task: str, model) -> dict:
    """Validation people: knowledge accuracy and answer loss; d2t teacher-forced loss (nats/token)."""
    d = rc.data[task]
    rows = d["val"] if task == "d2t" else d["val"].select_columns(["input_ids", "labels"]).to_list()
    loss = math.log(perplexity(model, [rows[i:i + 64] for i in range(0, len(rows), 64)]))
    out = {"val_loss": loss}
    if task == "knowledge":
        out["val_accuracy"] = evaluate_classification(model, d["val"])
    return out


def zero_shot(rec, rc: Rung, task: str) -> None:
    """The hand-written prompt on the frozen model (no training), and the knowledge task's chance level."""
    p = {"phase": "zeroshot", "task": task, "rung_params": rc.params}
    if task == "knowledge":
        d = rc.data[task]
        rec.add("-", "accuracy", evaluate_classification(rc.model, d["handwritten"]), unit="accuracy", model=rc.name,
                data=rc.names[task], method=ZERO_SHOT, scale=rc.scale, params={**p, "prompt": "discrete"})
        rec.add("-", "accuracy", evaluate_classification(rc.model, d["test"]), unit="accuracy", model=rc.name,
                data=rc.names[task], method="frozen", scale=rc.scale, params={**p, "prompt": "table"})
        rec.add("-", "knowledge_chance", d["chance"], unit="accuracy", model=rc.name, data=rc.names[task],
                scale="exact", params={"rung_params": rc.params})
    else:
        for k, v in score(rc, task, rc.model).items():
            rec.add("-", k, v, unit="0-1", model=rc.name, data=rc.names[task], method=ZERO_SHOT, scale=rc.scale,
                    params={**p, "prompt": "<table> sentence :"})


def record_run(rec, rc: Rung, task: str, method: str, kw: dict, rows, steps: int, batch: int, lr: float,
               seed: int, extra: dict, claim: str = "-"):
    """Train, score and record one run (scores, final loss, divergence, trainable / stored parameters, wall and
    step time); returns the trained model."""
    t0 = time.perf_counter()
    model, res = fit(rc, task, method, kw, rows, steps, batch, lr, seed)
    trainable = trainable_parameters(model)[0]
    stored = stored_params(model, method, rc.params)
    diverged = res.diverged_at is not None
    scores = score(rc, task, model) if not diverged else {METRIC[task]: math.nan}
    p = {**extra, "task": task, "steps": steps, "batch": batch, "rung_params": rc.params,
         "n_train": len(rows), **describe(kw)}
    # the searched lr is a measured choice: never part of the row's identity. n_test sizes the binomial error of
    # an accuracy (bench.report reads it); BLEU is no proportion, so d2t rows carry none
    info = {"lr": lr} | ({"n_test": len(rc.data[task]["test"])} if task == "knowledge" else {})
    row = dict(model=rc.name, data=rc.names[task], method=method, seed=seed)
    for k, v in scores.items():
        rec.add(claim, k, v, unit="accuracy" if k == "accuracy" else "0-1", scale=rc.scale, params=p, info=info, **row)
    loss = res.final.get("final_loss", math.nan) if not diverged else math.nan
    rec.add(claim, "final_train_loss", loss, unit="nats/token", scale=rc.scale, params=p, info=info, **row)
    rec.add(claim, "diverged", int(diverged), unit="bool", scale=rc.scale, params=p, info=info, **row)
    for metric, value, unit in (("trainable_params", trainable, "params"), ("stored_params", stored, "params"),
                                ("stored_pct", 100.0 * stored / rc.params, "%")):
        rec.add(claim, metric, value, unit=unit, scale="exact", params=p, info=info, **row)
    tp = timing_params(**p)
    rec.add(claim, "run_wall_s", time.perf_counter() - t0, unit="s", params=tp, timing=True, **row)
    rec.add(claim, "step_time_s", res.step_time_s, unit="s", params=tp, timing=True, **row)
    return model


# ============================================================================================ lr search

def search_cache_dir() -> Path:
    return cache_root().parent / "scale"


def search_key(fp: str, method: str, task: str, kw: dict, s: Settings, world_fp: str = "") -> str:
    """The cache key of one (model, method, task) search: everything its grid points' numbers depend on."""
    steps, batch = (s.k_steps, s.k_batch) if task == "knowledge" else (s.d_steps, s.d_batch)
    blob = {"v": SEARCH_VERSION, "model": fp, "method": method, "task": task, "grid": grid(s, method),
            "kw": describe(kw), "steps": steps, "batch": batch,
            "world": world_fp}
    if task == "d2t":             # its rows are cut to fit the positions the methods' virtual tokens leave
        blob.update(per_person=s.per_person, d_val_rows=s.d_val_rows, virtual=virtual_tokens(s, s.methods))
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


def choose(points: list[dict], task: str) -> float:
    """The selected lr: knowledge by validation accuracy (ties: lower loss), d2t by loss; NaN never wins."""
    ok = [p for p in points if math.isfinite(p["val_loss"])]
    if not ok:
        return min(p["lr"] for p in points)
    if task == "knowledge":
        return max(ok, key=lambda p: (p["val_accuracy"], -p["val_loss"], -p["lr"]))["lr"]
    return min(ok, key=lambda p: (p["val_loss"], p["lr"]))["lr"]


def read_cache(path: Path) -> list[dict] | None:
    """A search's cached grid points (None when absent or unreadable)."""
    try:
        return json.loads(path.read_text())["points"]
    except (OSError, ValueError, KeyError):
        return None


def write_cache(path: Path, points: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {"points": points, "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
