"""Memory accounting for claims M2 (BLOOM-176B: GPUs to serve and to fine-tune) and Q6 (int8 weights).

Small pure functions; every assumption is an argument with its default stated here, so a report can
print them. Independent of `bench.memory` (the LoRA harness's model) on purpose: this one is only
bytes-per-parameter arithmetic.

Sources: HF blog "A Gentle Introduction to 8-bit Matrix Multiplication" (176e9 x 2 B = 352 GB; 8 x 80 GB
A100 to serve, 72 to fine-tune); mixed-precision Adam bytes per parameter as in ZeRO (Rajbhandari et al.
2020, Sec. 3.1: 2 + 2 + 4 + 4 + 4 = 16); LLM.int8() paper (Dettmers et al. 2022) for BLOOM-176B's 1.96x.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch.nn as nn

from bench import BenchError

GB = 10**9  # decimal gigabytes, as the blog and GPU spec sheets use
BLOOM_176B_PARAMS_NOMINAL = 176e9  # the blog's round figure

# Mixed-precision training with Adam: bytes held per parameter (no activations).
MIXED_ADAM_BYTES = {
    "weights_16bit": 2,   # the fp16/bf16 copy used in forward/backward
    "grads_16bit": 2,     # gradients in 16 bit
    "master_fp32": 4,     # fp32 master weights the optimizer updates
    "adam_m_fp32": 4,     # Adam first moment
    "adam_v_fp32": 4,     # Adam second moment
}


@dataclass(frozen=True)
class GPUSpec:
    name: str
    memory_bytes: int
    help: str = ""


A100_80GB = GPUSpec("A100-80GB", 80 * GB, "NVIDIA A100 80 GB (spec sheet's decimal GB)")


def weight_bytes(n_params: float, bytes_per_param: float) -> float:
    if n_params < 0 or bytes_per_param <= 0:
        raise BenchError(f"weight_bytes needs n_params >= 0 and bytes_per_param > 0, got {n_params}, {bytes_per_param}")
    return n_params * bytes_per_param


def finetune_bytes_per_param(parts: dict[str, float] | None = None) -> float:
    """Sum of the per-parameter states of mixed-precision Adam (16 by default)."""
    return float(sum((parts or MIXED_ADAM_BYTES).values()))


def gpus_needed(total_bytes: float, gpu: GPUSpec = A100_80GB, overhead: float = 0.0) -> int:
    """Fewest GPUs whose memory holds `total_bytes * (1 + overhead)` (overhead: activations, KV cache,
    CUDA context, fragmentation, as a fraction of `total_bytes`). Perfect sharding assumed."""
    if overhead < 0:
        raise BenchError(f"overhead must be >= 0, got {overhead}")
    return max(1, math.ceil(total_bytes * (1.0 + overhead) / gpu.memory_bytes - 1e-12))


def bloom_accounting(n_params: float = BLOOM_176B_PARAMS_NOMINAL, gpu: GPUSpec = A100_80GB,
                     inference_overhead: float = 0.0, finetune_overhead: float = 0.0) -> dict:
    """M2: bf16 inference and mixed-precision Adam fine-tuning of BLOOM-176B, in bytes and GPUs."""
    infer = weight_bytes(n_params, 2)
    per_param = finetune_bytes_per_param()
    train = weight_bytes(n_params, per_param)
    return {
        "n_params": n_params, "gpu": gpu.name, "gpu_bytes": gpu.memory_bytes,
        "inference_overhead": inference_overhead, "finetune_overhead": finetune_overhead,
        "inference_weight_bytes": infer,
        "inference_gpus": gpus_needed(infer, gpu, inference_overhead),
        "finetune_bytes_per_param": per_param,
        "finetune_state_bytes": train,
        "finetune_gpus": gpus_needed(train, gpu, finetune_overhead),
        "finetune_over_inference_memory": (train * (1 + finetune_overhead)) / (infer * (1 + inference_overhead)),
    }


def implied_overhead(n_gpus: int, total_bytes: float, gpu: GPUSpec = A100_80GB) -> float:
    """The overhead fraction at which exactly `n_gpus` GPUs are full: n * memory / total - 1."""
    return n_gpus * gpu.memory_bytes / total_bytes - 1.0


# ---------------------------------------------------------------- Q6: load_in_8bit-style weight bytes
def _is_linear(module: nn.Module) -> bool:
    from transformers.pytorch_utils import Conv1D
    return isinstance(module, (nn.Linear, Conv1D))


def int8_weight_bytes(model: nn.Module, skip: tuple[str, ...] = ("lm_head",), float_bytes: int = 2,
                      scale_bytes: int = 4) -> dict:
    """Weight bytes of `model` (meta device is fine) if every nn.Linear / GPT-2 Conv1D not named in `skip`
    stored 1 byte per weight plus one `scale_bytes` scale per output row (bitsandbytes keeps fp32 row
    scales, SCB), and all other parameters (embeddings, norms, biases, skipped layers) `float_bytes`
    each. Shared (tied) parameters count once, except where `quantize_model` really holds two copies: a
    weight shared by several quantized layers gets one int8 copy per layer, and a weight a quantized layer
    shares with a module that stays in float (GPT-2's lm_head tied to wte, with skip=()) is counted both in
    int8 (the layer's copy) and in float (the embedding's). Returns the parts and the 16-bit total."""
    int8 = scales = 0
    for name, module in model.named_modules():
        if not _is_linear(module) or any(name == s or name.endswith("." + s) for s in skip):
            continue
        w = module.weight
        out_rows = w.shape[0] if isinstance(module, nn.Linear) else w.shape[1]
        int8 += w.numel()
        scales += out_rows * scale_bytes
    # parameters some module keeps in float: everything but the weights of the quantized layers
    kept: dict[int, nn.Parameter] = {}
    for name, module in model.named_modules():
        is_q = _is_linear(module) and not any(name == s or name.endswith("." + s) for s in skip)
        for pname, p in module.named_parameters(recurse=False):
            if not (is_q and pname == "weight"):
                kept[id(p)] = p
    other = sum(p.numel() for p in kept.values()) * float_bytes
    total_params = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    total = int8 + scales + other
    return {"int8_bytes": int8, "scale_bytes": scales, "other_bytes": other, "int8_total_bytes": total,
            "float16_total_bytes": total_params * 2, "float32_total_bytes": total_params * 4,
            "n_params": total_params, "ratio_fp16_over_int8": total_params * 2 / total if total else math.nan}


def bloom_176b_meta():
    """BLOOM-176B on the meta device (no memory): 70 layers, hidden 14336, 112 heads, vocab 250880
    (bigscience/bloom config.json)."""
    import torch
    from transformers import BloomConfig, BloomForCausalLM
    cfg = BloomConfig(vocab_size=250880, hidden_size=14336, n_layer=70, n_head=112)
    with torch.device("meta"):
        return BloomForCausalLM(cfg)
