"""Part 2: memory per method relative to full fine-tuning.

(a) tensor accounting after one step: weights, gradients, AdamW states and the activations saved for backward
    (bench.probes.SavedTensors, parameters excluded), deterministic -> results.csv;
(b) the measured peak growth of a fresh (unshared) model's step: process RSS sampled every 1 ms
    (bench.probes.PeakRSS) on CPU, torch's peak allocation on CUDA; process-dependent -> timings.csv.
"""

from __future__ import annotations

import torch

from bench.probes import PeakRSS, SavedTensors, rss_bytes, trim
from bench.schema import Recorder
from bench.timing import timing_params
from reproductions.methods.models import optimizer, step, variant


def tensor_accounting(model, opt, ids) -> dict[str, int]:
    """Bytes of weights, gradients (of one step), AdamW states and activations saved for backward."""
    params = list(model.parameters())
    with SavedTensors(exclude=params) as saved:
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    grads = sum(p.grad.numel() * p.grad.element_size() for p in params if p.grad is not None)
    opt.step()
    states = sum(v.numel() * v.element_size() for s in opt.state.values() for v in s.values()
                 if torch.is_tensor(v) and v.dim() > 0)
    opt.zero_grad(set_to_none=True)
    weights = sum(p.numel() * p.element_size() for p in params)
    return {"weights": weights, "grads": grads, "states": states, "activations": saved.bytes,
            "total": weights + grads + states + saved.bytes}


def measured_peak(name: str, base, ids) -> int:
    """Memory growth (bytes) from before building a fresh (unshared) variant to the peak of its second step."""
    trim()
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = torch.cuda.memory_allocated() if cuda else rss_bytes()
    model = variant(name, base, share=False)
    opt = optimizer(model)
    step(model, opt, ids)                                   # allocates the AdamW states
    if cuda:
        step(model, opt, ids)
        peak = torch.cuda.max_memory_allocated()
    else:
        with PeakRSS() as m:
            step(model, opt, ids)
        peak = m.peak
    del model, opt
    trim()
    return peak - start


def accounting_rows(rec: Recorder, base, ids, methods, common: dict, shape: dict) -> None:
    """(a): every method's tensor bytes by part, and each part's ratio to full fine-tuning's."""
    acct = {}
    for m in methods:
        v = variant(m, base)
        o = optimizer(v)
        step(v, o, ids)
        acct[m] = tensor_accounting(v, o, ids)
        del v, o
    for m, parts in acct.items():
        for part, nbytes in parts.items():
            kw = {"part": part, "source": "accounting", "supports": "A2", **shape}
            rec.add("-", "memory_bytes", nbytes, unit="bytes", method=m, scale="toy", params=kw, **common)
            full = acct["full"][part]
            rec.add("-", "memory_ratio_vs_full", nbytes / full if full else float("nan"), unit="ratio", method=m,
                    scale="toy", params=kw, **common)
    trim()


def peak_rows(rec: Recorder, base, ids, methods, dev: str, common: dict, shape: dict) -> None:
    """(b): every method's measured peak growth and its ratio to full fine-tuning's (timings.csv)."""
    peaks = {m: measured_peak(m, base, ids) for m in methods}
    for m, p in peaks.items():
        tp = timing_params(part="peak", source="rss" if dev == "cpu" else "cuda", supports="A2", **shape)
        rec.add("-", "peak_memory_bytes", p, unit="bytes", method=m, scale="toy", params=tp, timing=True, **common)
        rec.add("-", "peak_memory_ratio_vs_full", p / peaks["full"], unit="ratio", method=m, scale="toy",
                params=tp, timing=True, **common)
