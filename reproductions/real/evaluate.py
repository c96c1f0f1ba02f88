"""Scoring a classifier on a split, the accuracy interval, and the cost measurements of one trained model:
its saved file's bytes, its training memory, and the LoRA merge check (L5)."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import numpy as np
import torch

from bench.methods import merge_and_unload, save_trained
from bench.metrics import load as load_metric
from bench.probes import SavedTensors
from bench.train import collate


@torch.no_grad()
def predict(model, ds, batch: int = 64) -> np.ndarray:
    """Class probabilities (N, 2) in the order of ds; batches sorted by length (less padding)."""
    rows = [{"input_ids": r} for r in ds["input_ids"]]
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]))
    probs = np.zeros((len(rows), 2))
    was = model.training
    model.eval()
    for k in range(0, len(order), batch):
        idx = order[k:k + batch]
        b = collate([rows[i] for i in idx])
        out = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
        probs[idx] = torch.softmax(out.logits.float(), -1).numpy()
    model.train(was)
    return probs


def scores(probs: np.ndarray, labels) -> dict:
    """accuracy, mean cross-entropy loss (nats) and the per-item 0/1 `correct` (int8, N)."""
    y = np.asarray(labels)
    pred = probs.argmax(1)
    acc = load_metric("accuracy").compute(predictions=pred.tolist(), references=y.tolist())["accuracy"]
    loss = float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None)).mean())
    return {"accuracy": float(acc), "loss": loss, "correct": (pred == y).astype(np.int8)}


def bootstrap_ci(correct: np.ndarray, n: int, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean of `correct` (seeds x items), resampling seeds and items with
    replacement, `n` resamples from a fixed generator. (bench.stats.diff_interval is a different interval: a
    bootstrap-t over seed means plus a binomial item term; this group's committed intervals are these.)"""
    S, N = correct.shape
    rng = np.random.default_rng(seed)
    means = np.empty(n)
    for b in range(n):
        si = rng.integers(0, S, S)
        ii = rng.integers(0, N, N)
        means[b] = correct[np.ix_(si, ii)].mean()
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(lo), float(hi)


def file_bytes(model) -> int:
    """Bytes of the folder bench.methods.save_trained writes for `model` (what a user stores per task)."""
    with tempfile.TemporaryDirectory() as d:
        save_trained(model, Path(d) / "m")
        return sum(f.stat().st_size for f in (Path(d) / "m").iterdir())


def train_memory_bytes(model, memory_batch: int, memory_tokens: int) -> dict:
    """Weights + grads + AdamW moments (fp32) of the trainable parameters + activations saved for backward
    (bench.probes.SavedTensors, parameters and buffers left out) on one fixed (memory_batch, memory_tokens) batch."""
    params = list({p.data_ptr(): p for p in model.parameters()}.values())   # a storage shared by two counts once
    n_train = sum(p.numel() for p in params if p.requires_grad)
    weights = sum(p.numel() * p.element_size() for p in params)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 20000, (memory_batch, memory_tokens), generator=g)
    model.train()
    with SavedTensors(exclude=[*params, *model.buffers()]) as saved:
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.zeros(memory_batch).long())
    del out
    model.eval()
    return {"weights": weights, "gradients": 4 * n_train, "optimizer": 8 * n_train, "activations": saved.bytes,
            "total": weights + 12 * n_train + saved.bytes}


@torch.no_grad()
def merge_check(model, test) -> dict:
    """L5 on 64 test snippets: max |logit diff| merged vs unmerged, predictions that change, LoRA params left."""
    b = collate([{"input_ids": r} for r in test["input_ids"][:64]])
    before = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
    merged = merge_and_unload(copy.deepcopy(model)).eval()
    after = merged(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
    n_lora = sum(1 for n, _ in merged.named_parameters() if "lora" in n)
    return {"max_abs_diff": float((before - after).abs().max()),
            "pred_mismatch": float((before.argmax(-1) != after.argmax(-1)).sum()), "extra_params": n_lora}
