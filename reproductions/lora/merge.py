"""L1 and L5 on the rung: LoRA at step 0 equals the base bit for bit (scaling = alpha/r); after training,
merged == unmerged == merge_and_unload, merged W = W0 + (alpha/r) BA, the adapter file holds only the LoRA
tensors (L3); and the forward latency of base vs merged vs unmerged (timings only)."""

from __future__ import annotations

import copy
import struct
import tempfile
from pathlib import Path

import torch

from bench.methods import merge, merge_and_unload, save_trained, unmerge
from bench.methods.lora import lora_layers
from bench.schema import Recorder
from bench.timing import medians, round_robin, timing_params

from reproductions.lora.rung import adapt, device, tokens
from reproductions.lora.settings import ALPHA, Settings


@torch.no_grad()
def l1_step0(rec: Recorder, base, name: str, ranks, seeds) -> None:
    """L1 at step 0: logits of base + fresh LoRA vs base, B = 0, A random, scaling = alpha/r, per (seed, r)."""
    ids = tokens(base, 4, 32, seed=123)
    ref = base(input_ids=ids).logits
    for seed in seeds:
        for r in ranks:
            m = adapt(base, "lora", r, seed).eval()
            out = m(input_ids=ids).logits
            layers = lora_layers(m)
            kw = {"model": name, "method": "lora", "seed": seed, "scale": "exact", "params": {"r": r, "alpha": ALPHA}}
            rec.add("L1", "l1_step0_max_abs_diff", float((out - ref).abs().max()), unit="abs", **kw)
            rec.add("L1", "l1_step0_bitwise_equal", float(torch.equal(out, ref)), unit="bool", **kw)
            rec.add("L1", "l1_lora_B_abs_max_at_init", max(float(l.lora_B.weight.abs().max()) for _, l in layers),
                    unit="abs", **kw)
            rec.add("L1", "l1_lora_A_abs_max_at_init", max(float(l.lora_A.weight.abs().max()) for _, l in layers),
                    unit="abs", **kw)
            rec.add("L1", "l1_scaling_abs_err", max(abs(l.scaling - ALPHA / r) for _, l in layers), unit="abs", **kw)


def after_training(m, base, ids) -> dict:
    """L5 merged == unmerged == merge_and_unload; L1 merged weight = W0 + s*BA; L3 adapter file = 8 + header +
    numel * 4 bytes. Returns the measured values by metric name (plus file_bytes, header_bytes, file_error)."""
    m.eval()
    ids = ids.to(next(m.parameters()).device)
    out = {}
    with torch.no_grad():
        y_unmerged = m(input_ids=ids).logits
        w_before = {n: l.base.weight.detach().clone() for n, l in lora_layers(m)}
        merge(m)
        y_merged = m(input_ids=ids).logits
        out["l1_merged_delta_max_abs_err"] = max(
            float((l.base.weight - w_before[n] - l.delta_weight()).abs().max()) for n, l in lora_layers(m))
        unmerge(m)
        y_back = m(input_ids=ids).logits
        unloaded = merge_and_unload(copy.deepcopy(m)).eval()
        y_unloaded = unloaded(input_ids=ids).logits
    out["l5_merged_vs_unmerged_max_abs_diff"] = float((y_merged - y_unmerged).abs().max())
    out["l5_unmerge_roundtrip_max_abs_diff"] = float((y_back - y_unmerged).abs().max())
    out["l5_unloaded_vs_unmerged_max_abs_diff"] = float((y_unloaded - y_unmerged).abs().max())
    out["l5_unloaded_extra_params"] = (sum(q.numel() for q in unloaded.parameters())
                                       - sum(q.numel() for q in base.parameters()) + len(lora_layers(unloaded)))
    with tempfile.TemporaryDirectory() as tmp:
        save_trained(m, tmp)
        out["file_bytes"], out["header_bytes"], out["file_error"] = file_size_error(
            Path(tmp) / "adapter_model.safetensors", m)
    return out


def file_size_error(path: Path, model) -> tuple[int, int, int]:
    """(file bytes, header bytes, file - (8 + header + numel * element size of the model's LoRA tensors)):
    a safetensors file is an 8-byte header length, the JSON header, then the raw tensors."""
    raw = path.read_bytes()
    header_len = struct.unpack("<Q", raw[:8])[0]
    data = sum(l.lora_A.weight.numel() * l.lora_A.weight.element_size() +
               l.lora_B.weight.numel() * l.lora_B.weight.element_size() for _, l in lora_layers(model))
    return len(raw), header_len, len(raw) - (8 + header_len + data)


@torch.no_grad()
def latency(rec: Recorder, base, trained_lora, name: str, s: Settings) -> None:
    """Base vs merged vs unmerged LoRA forward time, round-robin (bench.timing), median of `latency_reps`
    (timings only), at batch x seq 1 x 16 and mem_batch x mem_seq."""
    dev = device()
    unmerged = copy.deepcopy(trained_lora).eval().to(dev)
    merged = merge_and_unload(copy.deepcopy(trained_lora)).eval().to(dev)
    variants = {"base": copy.deepcopy(base).eval().to(dev), "merged": merged, "unmerged": unmerged}
    for batch, seq in ((1, 16), (s.mem_batch, s.mem_seq)):
        ids = tokens(base, batch, seq, seed=5).to(dev)
        fns = {k: (lambda m=m: m(input_ids=ids)) for k, m in variants.items()}
        med = medians(round_robin(fns, s.latency_reps, warmup=True))
        p = timing_params(batch=batch, seq=seq, reps=s.latency_reps, device=dev)
        for k, v in med.items():
            rec.add("L5", "latency_s", v, unit="s", model=name, method=k, scale="toy", params=p, timing=True)
            rec.add("L5", "latency_ratio_vs_base", v / med["base"], unit="ratio", model=name, method=k, scale="toy",
                    params=p, timing=True)
