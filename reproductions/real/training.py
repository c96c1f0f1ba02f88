"""One fine-tuning run: bench.train.train with a constant lr after a short warmup, validation scored every
`eval_every` steps, early stopping after `patience` evaluations without a better validation accuracy (or the cap
`max_steps`), then the best checkpoint (by validation accuracy, then loss) restored and scored on test. A run
whose last evaluation was still its best at the cap is flagged (`still_improving_at_cap`)."""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from bench import realmodel
from bench.methods import apply, trainable_parameters
from bench.train import TrainConfig, train
from reproductions.real.evaluate import predict, scores
from reproductions.real.settings import CONFIG, LR, Settings, method_config


class _Stop(Exception):
    """Raised from the eval hook when validation stopped improving (early stopping)."""


def _trained_state(model) -> dict:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _restore(model, state: dict) -> None:
    own = dict(model.named_parameters())
    with torch.no_grad():
        for n, t in state.items():
            own[n].copy_(t)


class EarlyStopping:
    """bench.train's hooks for one run: `on_step` logs the loss and a timestamp per step; `eval_fn` scores the
    validation split, keeps the best trainable state and raises _Stop after `patience` evaluations without a
    better (accuracy, -loss), unless the cap is reached anyway."""

    def __init__(self, model, validation, s: Settings):
        self.validation, self.s = validation, s
        self.best = {"acc": -1.0, "loss": math.inf, "step": 0, "state": _trained_state(model), "since": 0}
        self.loss: list[float] = []
        self.t: list[float] = []
        self.val: list[tuple[int, float, float]] = []       # (step, accuracy, loss) per evaluation

    def on_step(self, step, m, loss) -> None:
        self.loss.append(float(loss))
        self.t.append(time.perf_counter())

    def eval_fn(self, m) -> dict:
        sc = scores(predict(m, self.validation), self.validation["label"])
        step, best = len(self.loss), self.best
        self.val.append((step, sc["accuracy"], sc["loss"]))
        if (sc["accuracy"], -sc["loss"]) > (best["acc"], -best["loss"]):
            best.update(acc=sc["accuracy"], loss=sc["loss"], step=step, state=_trained_state(m), since=0)
        else:
            best["since"] += 1
        if best["since"] >= self.s.patience and step < self.s.max_steps:
            raise _Stop
        return {"val_accuracy": sc["accuracy"], "val_loss": sc["loss"]}


def train_one(encoder, data, method: str, seed: int, s: Settings, r: int | None = None) -> dict:
    """Train one run with early stopping; returns its measurements (and the model, restored to its best)."""
    model = realmodel.classifier(encoder, seed)
    torch.manual_seed(seed)
    model = apply(model, method_config(method, r))
    n_train, n_total = trainable_parameters(model)
    lr = LR[method]
    hooks = EarlyStopping(model, data["validation"], s)
    cfg = TrainConfig(lr=lr, steps=s.max_steps, batch_size=s.batch, warmup=s.warmup, decay="constant",
                      weight_decay=0.0, betas=(0.9, 0.999), eval_every=s.eval_every, seed=seed, progress=False)
    t0 = time.perf_counter()
    try:
        train(model, data["train"], cfg, eval_fn=hooks.eval_fn, on_step=hooks.on_step)
        stopped = False
    except _Stop:
        stopped = True
    wall = time.perf_counter() - t0
    best, steps = hooks.best, len(hooks.loss)
    _restore(model, best["state"])
    model.eval()
    test = scores(predict(model, data["test"]), data["test"]["label"])
    dts = np.diff([t0] + hooks.t)
    tail = hooks.loss[-s.eval_every:] or [math.nan]
    return {"method": method, "seed": seed, "r": r if r is not None else CONFIG[method].get("r"), "lr": lr,
            "model": model, "trainable_params": n_train, "total_params": n_total,
            "trainable_pct": 100.0 * n_train / n_total, "steps_used": steps, "best_step": best["step"],
            "stopped_early": stopped, "still_improving_at_cap": bool(not stopped and best["step"] == steps),
            "final_train_loss": float(np.mean(tail)), "val_loss": best["loss"], "val_accuracy": best["acc"],
            "test_accuracy": test["accuracy"], "test_loss": test["loss"], "correct": test["correct"],
            "step_time_s": float(np.median(dts)) if len(dts) else math.nan, "wall_s": wall,
            "val_curve": hooks.val}
