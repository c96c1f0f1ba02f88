"""LoRA and the added-module methods on the real Llama (issue 35 item 4): L1, L5 (merge exactness, merged-vs-base
forward latency) and A2, L3 (training memory measured from live tensors, checkpoint bytes).

- L1 at step 0: LoRA r = 8 (alpha 16) on q_proj, v_proj, fresh (B = 0): logits on the text windows vs the base's;
- `lora_steps` AdamW steps (lr 1e-3, seed 0) on the windows' LM loss move B off zero; then
  reproductions.lora.merge.after_training: merged == unmerged == merge_and_unload, merged W = W0 + (alpha/r) BA;
- latency: forward of the base, the merged and the unmerged model on `latency_windows` windows, round-robin
  (bench.timing; timings.csv only: wall-clock on a shared machine decides nothing);
- memory: bench.memory.measure_step (one AdamW step; weights, gradients, optimizer states, saved activations
  counted from live tensors) for full FT, LoRA, prompt tuning (20 virtual tokens) and prefix tuning (10
  tokens, MLP reparameterisation) on the same (mem_batch, chunk_tokens) batch of windows; each method's
  saved bytes (bench.methods.save_trained).
"""

from __future__ import annotations

import copy
import statistics
import tempfile
from pathlib import Path

import torch

from bench.memory import measure_step
from bench.methods import apply, make_config, save_trained, trainable_parameters
from bench.schema import Recorder
from bench.timing import round_robin, timing_params
from bench.claims.decoder import LORA_R
from reproductions.decoder.rows import WEIGHTS
from reproductions.lora.merge import after_training

ALPHA = 2 * LORA_R
TARGETS = ("q_proj", "v_proj")
METHODS = {   # name -> (config kwargs, claim of its memory rows)
    "full": ({}, "-"),
    "lora": ({"r": LORA_R, "alpha": float(ALPHA), "target_modules": TARGETS}, "L3"),
    "prompt": ({"num_virtual_tokens": 20}, "A2"),
    "prefix": ({"num_virtual_tokens": 10}, "A2"),
}


def _add(rec: Recorder, claim: str, metric: str, value, info: dict | None = None, **kw) -> None:
    """A row with the weights' provenance in its info, as every row of the group."""
    rec.add(claim, metric, value, info={**(info or {}), "weights": WEIGHTS}, **kw)


def adapt(lm, method: str, seed: int = 0):
    """A deep copy of `lm` with `method` applied (seeded init)."""
    torch.manual_seed(seed)
    return apply(copy.deepcopy(lm), make_config(method, **METHODS[method][0]))


def _lm_steps(m, ids: torch.Tensor, steps: int, lr: float = 1e-3) -> list[float]:
    """`steps` AdamW steps on the LM loss of `ids` (B, T); returns the losses."""
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=lr)
    m.train()
    losses = []
    for _ in range(steps):
        loss = m(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    m.eval()
    return losses


def file_bytes(model) -> int:
    """Bytes of the folder save_trained writes for `model`."""
    with tempfile.TemporaryDirectory() as d:
        save_trained(model, Path(d) / "m")
        return sum(f.stat().st_size for f in (Path(d) / "m").iterdir())


@torch.no_grad()
def _forward(m, ids):
    return lambda: m(input_ids=ids, use_cache=False)


def merge_part(rec: Recorder, lm, ids: torch.Tensor, s, common: dict) -> None:
    """L1 at step 0 and after `s.lora_steps` steps; L5 merge exactness; latency merged / unmerged / base."""
    kw = dict(model=common["model"], data=common["data"], method="lora", seed=0, scale="real")
    p = {**common["params_base"], "r": LORA_R, "alpha": ALPHA, "targets": ",".join(TARGETS)}
    m = adapt(lm, "lora").eval()
    with torch.no_grad():
        ref, out = lm(input_ids=ids).logits, m(input_ids=ids).logits
    _add(rec, "L1", "l1_step0_max_abs_diff", float((out - ref).abs().max()), unit="abs", params=p, **kw)
    del ref, out
    losses = _lm_steps(m, ids[:s.mem_batch], s.lora_steps)
    got = after_training(m, lm, ids)
    _add(rec, "L1", "l1_merged_delta_max_abs_err", got["l1_merged_delta_max_abs_err"], unit="abs", params=p, **kw)
    for metric in ("l5_merged_vs_unmerged_max_abs_diff", "l5_unmerge_roundtrip_max_abs_diff",
                   "l5_unloaded_vs_unmerged_max_abs_diff", "l5_unloaded_extra_params"):
        _add(rec, "L5", metric, got[metric], unit="params" if metric.endswith("params") else "logit", params=p,
                info={"train_steps": s.lora_steps, "train_losses": [round(x, 4) for x in losses]}, **kw)
    merged = copy.deepcopy(m)
    from bench.methods import merge_and_unload
    merged = merge_and_unload(merged).eval()
    lat = ids[:s.latency_windows]
    times = round_robin({"base": _forward(lm, lat), "merged": _forward(merged, lat), "unmerged": _forward(m, lat)},
                        s.latency_reps, warmup=True)
    base_t = statistics.median(times["base"])
    for name, ts in times.items():
        tp = timing_params(batch=len(lat), seq=lat.shape[1], variant=name)
        _add(rec, "L5", "forward_time_s", statistics.median(ts), unit="s", timing=True, params={**p, **tp}, **kw)
        _add(rec, "L5", "forward_time_ratio_vs_base", statistics.median(ts) / base_t, unit="ratio", timing=True,
                params={**p, **tp}, **kw)


def memory_part(rec: Recorder, lm, ids: torch.Tensor, s, common: dict) -> None:
    """Training memory by part after one AdamW step (measured), its ratio to full FT's, and saved bytes."""
    batch = ids[:s.mem_batch]
    got, saved, counts = {}, {}, {}
    for method in METHODS:
        m = adapt(lm, method)
        counts[method] = trainable_parameters(m)
        saved[method] = file_bytes(m)
        got[method] = measure_step(m, batch).memory
        del m
    full, full_bytes = got["full"], saved["full"]
    for method, mem in got.items():
        claim = METHODS[method][1]
        kw = dict(model=common["model"], data=common["data"], method=method, seed=0, scale="real")
        base = {**common["params_base"], "batch": s.mem_batch, "seq": int(batch.shape[1]), "optimizer": "adamw",
                "precision": "fp32", **({"r": LORA_R} if method == "lora" else {})}
        parts = mem.parts() | {"states": mem.states}
        refs = full.parts() | {"states": full.states}
        for part, v in parts.items():
            if part == "int8_overhead":
                continue
            pp = {**base, "part": part, "source": "measured"}
            _add(rec, claim, "train_memory_bytes", v, unit="bytes", params=pp, **kw)
            if method != "full" and refs[part] > 0:
                _add(rec, claim, "memory_ratio_vs_full", v / refs[part], unit="ratio", params=pp, **kw)
        _add(rec, claim, "trainable_params", counts[method][0], unit="params", params=base, **kw)
        _add(rec, claim, "checkpoint_bytes", saved[method], unit="bytes", params=base, **kw)
        if method != "full":
            _add(rec, claim, "checkpoint_ratio_vs_full", saved[method] / full_bytes, unit="ratio", params=base, **kw)
