"""Part 3: inference latency (eval, no_grad forward) of the base model, unmerged LoRA and merged LoRA
(merge_and_unload), round-robin over the three; the target merged / base is judged on ABBA pairs (L5: merging
removes the overhead; unmerged / base is the overhead that merging removes)."""

from __future__ import annotations

import copy

import torch

from bench.methods import merge_and_unload
from bench.methods.lora import lora_layers
from bench.schema import Recorder
from bench.timing import abba, medians, pair_stats, round_robin, timing_params
from reproductions.methods.models import variant
from reproductions.methods.settings import LORA_TARGETS, TARGET_MERGED_OVER_BASE, ModelSpec, Settings, method_kwargs


def random_lora_B(model, g: torch.Generator) -> None:
    """Give every LoRA layer a trained-looking B (N(0, 0.02^2)), so merging changes W and the tasks differ."""
    with torch.no_grad():
        for _, layer in lora_layers(model):
            layer.lora_B.weight.copy_(torch.randn(layer.lora_B.weight.shape, generator=g) * 0.02)


def inference_rows(rec: Recorder, base, spec: ModelSpec, s: Settings, seed: int, dev, common: dict) -> None:
    """Every (batch, seq) of s.infer_shapes: max |merged - unmerged| and |merged - base| logits, round-robin
    latencies and ratios to base, and the ABBA-paired merged / base. Merged and unmerged own their weights
    (merging writes them)."""
    unmerged = variant("lora", base, share=False)
    g = torch.Generator().manual_seed(seed + 1)
    random_lora_B(unmerged, g)
    merged = merge_and_unload(copy.deepcopy(unmerged))
    models = {"base": base, "lora_unmerged": unmerged, "lora_merged": merged}
    for m in models.values():
        m.eval()
    for (b, t) in s.infer_shapes:
        x = torch.randint(1, spec.vocab, (b, t), generator=g).to(dev)
        with torch.no_grad():
            want = base(input_ids=x).logits
            diff = float((merged(input_ids=x).logits - want).abs().max())        # also warms every model up
            diff_um = float((merged(input_ids=x).logits - unmerged(input_ids=x).logits).abs().max())
            lat = medians(round_robin({k: (lambda v=v: v(input_ids=x)) for k, v in models.items()}, s.infer_rounds))
        kw = {"batch": b, "seq": t, "n_embd": spec.n_embd, "n_layer": spec.n_layer, "vocab": spec.vocab,
              "r": method_kwargs("lora")["r"], "targets": ",".join(LORA_TARGETS)}
        rec.add("-", "merged_vs_unmerged_max_abs_diff", diff_um, unit="abs", method="lora", scale="toy",
                params={**kw, "supports": "L5"}, **common)
        rec.add("-", "merged_vs_base_max_abs_diff", diff, unit="abs", method="lora", scale="toy",
                params={**kw, "supports": "L5", "note": "nonzero: B is random, so merged != base"}, **common)
        latency_rows(rec, lat, timing_params(**kw, rounds=s.infer_rounds, supports="L5"), common)
        with torch.no_grad():   # the target's measurement: merged and base forwards in ABBA pairs
            st = pair_stats(*abba(lambda m=merged: m(input_ids=x), lambda m=base: m(input_ids=x), s.pair_rounds))
        tp = timing_params(**kw, protocol="ABBA pairs", supports="L5", target=TARGET_MERGED_OVER_BASE,
                           **{k: v for k, v in st.items() if k != "ratio"})
        rec.add("-", "forward_latency_merged_over_base_paired", st["ratio"], unit="ratio", method="lora_merged",
                scale="toy", params=tp, timing=True, **common)


def latency_rows(rec: Recorder, lat: dict[str, float], tp: dict, common: dict) -> None:
    """The round-robin medians (s) of base / lora_unmerged / lora_merged and their ratios to base."""
    for k, v in lat.items():
        rec.add("-", "forward_latency_s", v, unit="s", method=k, scale="toy", params=tp, timing=True, **common)
    rec.add("-", "forward_latency_ratio_vs_base", lat["lora_merged"] / lat["base"], unit="ratio",
            method="lora_merged", scale="toy", params={**tp, "target": TARGET_MERGED_OVER_BASE}, timing=True,
            **common)
    rec.add("-", "forward_latency_ratio_vs_base", lat["lora_unmerged"] / lat["base"], unit="ratio",
            method="lora_unmerged", scale="toy", params=tp, timing=True, **common)
