"""M1 and M2, exact: float formats from their bit layouts, and BLOOM-176B's memory accounting.

M1: every format's range and precision (bench.numerics.formats) checked against torch.finfo where torch has
the dtype, FP16's overflow boundary (the lecture's 'about 100,000', the LLM.int8() paper's '65535'), and
whether a learning-rate-sized update survives being added to a weight of 1.0.
M2: the blog's 8 A100s to serve and ~72 to fine-tune BLOOM-176B, from bytes per parameter
(bench.numerics.accounting), with the overheads those GPU counts imply.
"""

from __future__ import annotations

from bench.numerics import accounting, formats
from bench.schema import Recorder


# ---------------------------------------------------------------- M1
def format_rows(rec: Recorder) -> None:
    """M1: each format's layout and limits, FP16's overflow boundary, and whether 1.0 + 1e-5 keeps its update."""
    for fmt in formats.FORMATS.values():
        row = fmt.row()
        p = {"format": fmt.name}
        for key in ("exp_bits", "man_bits", "bits", "max", "min_normal", "min_subnormal", "eps"):
            rec.add("M1", f"format_{key}", row[key], unit="bits" if "bits" in key else "value",
                    model=fmt.name, scale="exact", params=p)
        mism = formats.finfo_mismatches(fmt)
        rec.add("M1", "format_finfo_mismatches", len(mism), unit="count", model=fmt.name, scale="exact",
                params={**p, "checked": fmt.dtype is not None, "fields": ",".join(mism)})
    fp16 = formats.FORMATS["fp16"]
    for value in (100000, 70000, 65535, 65520, 65519, 65504):
        rec.add("M1", "fp16_overflows", int(formats.overflows(value, fp16)), unit="bool", model="fp16",
                scale="exact", params={"value": value, "stored_as": formats.cast_value(value, fp16)})
    lr, grad = 1e-3, 1e-2  # a learning-rate-sized step on a small gradient: update 1e-5
    for fmt in formats.FORMATS.values():
        rec.add("M1", "update_survives", int(formats.update_survives(1.0, -lr * grad, fmt)), unit="bool",
                model=fmt.name, scale="exact", params={"format": fmt.name, "weight": 1.0, "update": -lr * grad})


# ---------------------------------------------------------------- M2
# assumed overhead (activations, KV cache, CUDA context, fragmentation) as a share of the bytes each count holds:
# one assumption for both counts (issue 31: serving had 20% and fine-tuning 0%, so their ratio was not like for
# like); 0.2 decides (bench/claims/precision.py), 0 and 1 are printed beside it
OVERHEADS = (0.0, 0.2, 1.0)


def bloom_rows(rec: Recorder) -> None:
    """M2: BLOOM-176B's weight and fine-tuning bytes, the GPUs they need with and without overhead, and the
    overhead the blog's 8 and 72 GPUs imply."""
    gpu = accounting.A100_80GB
    base = accounting.bloom_accounting()
    n = base["n_params"]
    common = {"n_params": n, "gpu": gpu.name, "gpu_bytes": gpu.memory_bytes}
    rec.add("M2", "bloom_bf16_weight_bytes", base["inference_weight_bytes"], unit="bytes", model="bloom-176b",
            scale="exact", params={**common, "bytes_per_param": 2})
    for part, b in accounting.MIXED_ADAM_BYTES.items():
        rec.add("M2", "finetune_bytes_part", b, unit="bytes/param", model="bloom-176b", scale="exact",
                params={"part": part})
    rec.add("M2", "finetune_bytes_per_param", base["finetune_bytes_per_param"], unit="bytes/param",
            model="bloom-176b", scale="exact", params=dict(accounting.MIXED_ADAM_BYTES))
    for o in OVERHEADS:
        a = accounting.bloom_accounting(inference_overhead=o, finetune_overhead=o)
        rec.add("M2", "bloom_inference_gpus", a["inference_gpus"], unit="gpus", model="bloom-176b", scale="exact",
                params={**common, "overhead": o, "claimed": 8})
        rec.add("M2", "bloom_finetune_gpus", a["finetune_gpus"], unit="gpus", model="bloom-176b", scale="exact",
                params={**common, "overhead": o, "claimed": 72})
        rec.add("M2", "bloom_finetune_over_inference_memory", a["finetune_over_inference_memory"], unit="ratio",
                model="bloom-176b", scale="exact", params={"overhead": o, "claimed": 9})
    for claimed, total in ((8, base["inference_weight_bytes"]), (72, base["finetune_state_bytes"])):
        rec.add("M2", "bloom_implied_overhead", accounting.implied_overhead(claimed, total, gpu), unit="ratio",
                model="bloom-176b", scale="exact", params={"claimed_gpus": claimed, "bytes": total})
