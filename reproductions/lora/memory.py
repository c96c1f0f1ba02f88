"""Part 3, memory on the rung (A2, L3, L4): full FT vs LoRA at every rank vs adapters, predicted by bench.memory
and measured from live tensors after one AdamW step (bench.memory.measure_step); the model's predicted peak
against an independent measurement (bench.memory.measure_peak: the allocator's events in the profiler on CPU,
max_memory_allocated on CUDA, on a fresh copy); step time and peak RSS as timings (round-robin, bench.timing)."""

from __future__ import annotations

import statistics

import torch

from bench.memory import Setup, estimate, measure_peak, measure_step
from bench.schema import Recorder
from bench.timing import round_robin, timing_params

from reproductions.lora.rung import adapt, device, tokens, width
from reproductions.lora.settings import Settings

MODEL_PARTS = ("weights", "gradients", "optimizer", "activations", "total")   # model / measured, by part


def memory_sweep(rec: Recorder, base, name: str, s: Settings, ranks) -> dict:
    """Predicted (bench.memory) vs measured bytes by part, one AdamW step, full / LoRA r / adapters;
    then step times round-robin. Returns {(method, r): measured total bytes}."""
    variants = [("full", 0)] + [("lora", r) for r in ranks] + [("adapters", 0)]
    dev = device()
    setup = Setup(precision="fp32", batch=s.mem_batch, seq_len=s.mem_seq, device=dev)
    ids = tokens(base, s.mem_batch, s.mem_seq).to(dev)
    pred, meas, live = {}, {}, {}
    for key in variants:        # every variant stays alive until the step times are taken
        m = adapt(base, *key, seed=0, adapter_size=s.adapter_size).to(dev)
        pred[key] = estimate(m, setup)
        meas[key] = measure_step(m, ids)
        live[key] = m
    totals = {}
    for (method, r), pm in pred.items():
        p = {"batch": s.mem_batch, "seq": s.mem_seq, "precision": "fp32", "optimizer": "adamw"}
        if method == "lora":
            p["r"] = r
        if method == "adapters":
            p["size"] = min(s.adapter_size, width(base))
        got = meas[(method, r)]
        _record_parts(rec, name, method, p, pm, got.memory, pred[("full", 0)], meas[("full", 0)].memory)
        _record_independent(rec, name, method, p, pm, adapt(base, method, r, seed=0, adapter_size=s.adapter_size),
                            ids, dev)
        totals[(method, r)] = got.memory.total
        kw = {"model": name, "method": method, "scale": "toy", "timing": True}
        rec.add("L3", "peak_rss_delta_bytes" if dev == "cpu" else "peak_cuda_bytes", got.peak_bytes, unit="bytes",
                params=p, **kw)
        rec.add("L3", "peak_over_model_total", got.peak_bytes / max(pm.total - pm.weights, 1), unit="ratio",
                params=p | {"note": "peak minus before-step RSS / predicted non-weight bytes"}, **kw)
    _step_times(rec, name, s, live, ids)
    return totals


def _record_parts(rec: Recorder, name, method, p, pm, mm, full_pred, full_meas) -> None:
    """train_memory_bytes and memory_ratio_vs_full by part for the model (pm) and the measurement (mm), under
    A2 and L3; then model / measured by part (A2)."""
    for source, mem, ref in (("model", pm, full_pred), ("measured", mm, full_meas)):
        parts = mem.parts() | {"states": mem.states}
        refs = ref.parts() | {"states": ref.states}
        for part, v in parts.items():
            if part == "int8_overhead":
                continue
            pp = p | {"part": part, "source": source}
            for claim in ("A2", "L3"):
                rec.add(claim, "train_memory_bytes", v, unit="bytes", model=name, method=method, scale="toy", params=pp)
                if method != "full" and refs[part] > 0:
                    rec.add(claim, "memory_ratio_vs_full", v / refs[part], unit="ratio", model=name, method=method,
                            scale="toy", params=pp)
    for part in MODEL_PARTS:
        mv, pv = getattr(mm, part), getattr(pm, part)
        if mv > 0:
            rec.add("A2", "memory_model_over_measured", pv / mv, unit="ratio", model=name, method=method,
                    scale="toy", params=p | {"part": part})


def _record_independent(rec: Recorder, name, method, p, pm, fresh, ids, dev) -> None:
    """A2's non-circular check: the model's predicted peak (parts + transient) over the peak measured without the
    model's counting (measure_peak on `fresh`, a copy no step has touched: its own warm-up step, then one
    measured step)."""
    got = measure_peak(fresh.to(dev), ids)
    kw = {"model": name, "method": method, "scale": "toy", "params": p | {"part": "total"}}
    rec.add("A2", "independent_peak_bytes", got.total, unit="bytes",
            info={"source": "torch.profiler memory events" if dev == "cpu" else "cuda max_memory_allocated",
                  "step_peak_bytes": got.step_peak}, **kw)
    rec.add("A2", "memory_model_over_independent", pm.peak / got.total, unit="ratio",
            info={"model_peak_bytes": pm.peak}, **kw)


def _step_times(rec: Recorder, name, s: Settings, live: dict, ids) -> None:
    """One training step per variant per round, `step_reps` rounds, round-robin so that foreign load hits every
    variant alike; medians and their ratio to full FT (timings.csv)."""
    fns = {key: _train_step(m, ids) for key, m in live.items()}
    times = round_robin(fns, s.step_reps)
    full_t = statistics.median(times[("full", 0)])
    for (method, r), ts in times.items():
        p = timing_params(batch=s.mem_batch, seq=s.mem_seq) | ({"r": r} if method == "lora" else {})
        kw = {"model": name, "method": method, "scale": "toy", "params": p, "timing": True}
        rec.add("L3", "step_time_s", statistics.median(ts), unit="s", **kw)
        rec.add("L3", "step_time_ratio_vs_full", statistics.median(ts) / full_t, unit="ratio", **kw)


def _train_step(m, ids):
    """A closure: forward with LM loss, backward, one AdamW step on the trainable parameters."""
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-5)

    def step():
        m(input_ids=ids, labels=ids, use_cache=False).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step
