"""Part 1, exact (meta device, no weights): LoRA parameter counts of paper-scale models (L2), the per-matrix
ratio 2r/d, and the memory model (bench.memory) at paper scale for GPT-3 175B (L3) and LLaMA-7B (A2).

GPT-3 is modelled with an OPTConfig (separate q/k/v/out_proj, GELU, pre-LN, learned positions: 2 more position
rows than GPT-3, +24,576 parameters) so the targets are nameable.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from transformers import GPT2Config, LlamaConfig, MT5Config, OPTConfig

from bench.memory import Setup, estimate, meta_model
from bench.methods import apply, trainable_parameters
from bench.methods.presets import make_preset
from bench.schema import Recorder

from reproductions.lora.settings import ALPHA


def _gpt3_config():
    return OPTConfig(hidden_size=12288, num_hidden_layers=96, num_attention_heads=96, ffn_dim=4 * 12288,
                     vocab_size=50257, max_position_embeddings=2048, word_embed_proj_dim=12288,
                     activation_function="gelu", do_layer_norm_before=True, enable_bias=True)


def _llama7b_config():
    return LlamaConfig(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, intermediate_size=11008,
                       vocab_size=32000, tie_word_embeddings=False)


def _gpt2_config(d, layers, heads):
    return GPT2Config(n_embd=d, n_layer=layers, n_head=heads, vocab_size=50257, n_positions=1024)


def _mt0_large():
    """mt0-large (mT5-large shapes). transformers 5 ties mT5's lm_head to the shared embedding; the real
    checkpoint does not, so the head gets its own (meta) tensor: 1,229,581,312 parameters, as peft's README
    prints (1,231,940,608 with LoRA r = 8 on q,v)."""
    m = meta_model(MT5Config(d_model=1024, d_kv=64, d_ff=2816, num_layers=24, num_decoder_layers=24,
                             num_heads=16, vocab_size=250112, feed_forward_proj="gated-gelu"))
    m.lm_head.weight = nn.Parameter(torch.empty_like(m.shared.weight, device="meta"))
    return m


# name -> (builder, {targets label: module names})
META_MODELS = {
    "gpt3-175b": (_gpt3_config, {"q,v": ("q_proj", "v_proj"),
                                 "q,k,v,o": ("q_proj", "k_proj", "v_proj", "out_proj")}),
    "llama-7b": (_llama7b_config, {"q,v": ("q_proj", "v_proj"),
                                   "q,k,v,o": ("q_proj", "k_proj", "v_proj", "o_proj")}),
    "gpt2-medium": (lambda: _gpt2_config(1024, 24, 16), {"c_attn": ("c_attn",)}),
    "gpt2-large": (lambda: _gpt2_config(1280, 36, 20), {"c_attn": ("c_attn",)}),
    "mt0-large": (_mt0_large, {"q,v": ("q", "v")}),
}
# (model, r, targets): the paper's and peft's published settings
L2_GRID = [("gpt3-175b", 1, "q,v"), ("gpt3-175b", 4, "q,v"), ("gpt3-175b", 8, "q,v"), ("gpt3-175b", 4, "q,k,v,o"),
           ("llama-7b", 8, "q,v"), ("llama-7b", 16, "q,k,v,o"), ("gpt2-medium", 4, "c_attn"),
           ("gpt2-large", 4, "c_attn"), ("mt0-large", 8, "q,v")]
RATIO_D = (64, 128, 192, 320, 768, 1024, 1280, 4096, 12288)
RATIO_R = (1, 2, 4, 8, 16, 64)
# the memory model at paper scale: (claim, model, r, targets, sequence length). GPT-3 r = 4 on q,v is the
# paper's 350 GB / 35 MB setting; LLaMA-7B r = 8 on q,v the lecture's "23 GB -> 8 MB".
PAPER_MEMORY_PLANS = [("L3", "gpt3-175b", 4, "q,v", 2048), ("A2", "llama-7b", 8, "q,v", 2048)]
PAPER_ADAPTER_SIZE = 64

META_CACHE: dict[str, nn.Module] = {}


def meta(name: str) -> nn.Module:
    """A fresh meta-device model (built once per process, then deep-copied: building 96 GPT-3 layers costs
    seconds, copying a fraction of that). Clear META_CACHE when done."""
    if name not in META_CACHE:
        built = META_MODELS[name][0]()
        META_CACHE[name] = built if isinstance(built, nn.Module) else meta_model(built)
    return copy.deepcopy(META_CACHE[name])


def with_lora(model, r: int, targets) -> nn.Module:
    """`model` with LoRA of rank r on `targets` (module names), at the experiment's ALPHA."""
    return apply(model, make_preset("lora", r=r, alpha=ALPHA, target_modules=tuple(targets)))


def exact_counts(rec: Recorder) -> dict:
    """L2 counts and the per-matrix ratio table, then the memory model at paper scale (A2, L3)."""
    out = l2_counts(rec)
    out["memory"] = paper_memory(rec, out["totals"])
    META_CACHE.clear()
    return out


def l2_counts(rec: Recorder) -> dict:
    """L2: LoRA parameters of paper-scale configs (meta device), adapter bytes, and 2r/d per matrix.
    Returns {"totals": {model: total parameters}}."""
    out = {"totals": {}}
    for name, r, label in L2_GRID:
        model = meta(name)
        total = trainable_parameters(model)[1]
        if name not in out["totals"]:
            out["totals"][name] = total
            rec.add("L2", "total_params", total, unit="params", model=name, scale="exact", method="full")
        n = trainable_parameters(with_lora(model, r, META_MODELS[name][1][label]))[0]
        kw = {"model": name, "scale": "exact", "method": "lora", "params": {"r": r, "targets": label}}
        rec.add("L2", "lora_trainable_params", n, unit="params", **kw)
        rec.add("L2", "adapter_bytes_fp16", 2 * n, unit="bytes", **kw)
        rec.add("L2", "adapter_bytes_fp32", 4 * n, unit="bytes", **kw)
        rec.add("L2", "lora_trainable_share", n / total, unit="ratio", **kw)
    for name in ("llama-7b", "gpt3-175b"):
        for b, tag in ((2, "fp16"), (4, "fp32")):
            rec.add("L2", f"full_weights_bytes_{tag}", b * out["totals"][name], unit="bytes", model=name,
                    scale="exact", method="full")
    _ratio_per_matrix(rec)
    return out


def _ratio_per_matrix(rec: Recorder) -> None:
    """Our LoRA on one bias-free d x d Linear vs 2r/d."""
    for d in RATIO_D:
        for r in RATIO_R:
            if r > d:
                continue
            with torch.device("meta"):
                m = nn.ModuleDict({"proj": nn.Linear(d, d, bias=False)})
            n = trainable_parameters(with_lora(m, r, ("proj",)))[0]
            kw = {"unit": "ratio", "model": f"linear-{d}", "scale": "exact", "method": "lora",
                  "params": {"d": d, "r": r}}
            rec.add("L2", "lora_ratio_per_matrix", n / d**2, **kw)
            rec.add("L2", "lora_ratio_error_vs_2r_over_d", abs(n / d**2 - 2 * r / d), **kw)


def paper_memory(rec: Recorder, totals: dict) -> dict:
    """The memory model at paper scale: mixed-precision AdamW (ZeRO's 16 B per trainable parameter), GPT-3 175B
    (L3: LoRA r = 4 on q,v, the paper's 350 GB / 35 MB setting) and LLaMA-7B (A2: r = 8 on q,v).
    Returns {model: {method: bytes by part, "assumptions": ...}}."""
    out = {}
    for claim, name, r, label, seq in PAPER_MEMORY_PLANS:
        setup = Setup(precision="mixed", batch=1, seq_len=seq, device="cuda")
        variants = {"full": apply(meta(name), make_preset("full")),
                    "lora": with_lora(meta(name), r, META_MODELS[name][1][label]),
                    "adapters": apply(meta(name), make_preset("adapters", size=PAPER_ADAPTER_SIZE))}
        mems = {k: estimate(m, setup) for k, m in variants.items()}
        out[name] = {k: v.parts() | {"states": v.states} for k, v in mems.items()}
        out[name]["assumptions"] = mems["full"].assumptions
        for method, mem in mems.items():
            p = {"precision": "mixed", "source": "model"} | ({"r": r, "targets": label} if method == "lora" else {}) \
                | ({"size": PAPER_ADAPTER_SIZE} if method == "adapters" else {})
            _memory_rows(rec, claim, name, method, p, _parts(mem), _parts(mems["full"]), seq)
        # checkpoints in fp16: the whole model vs the LoRA tensors
        n_lora = sum(p.numel() for p in variants["lora"].parameters() if p.requires_grad)
        for method, n in (("full", totals[name]), ("lora", n_lora)):
            p = {"dtype": "fp16"} | ({"r": r, "targets": label} if method == "lora" else {})
            rec.add(claim, "checkpoint_bytes", 2 * n, unit="bytes", model=name, scale="exact", method=method, params=p)
        # what the paper's 1.2 TB means per parameter
        if name == "gpt3-175b":
            rec.add(claim, "paper_full_ft_bytes_per_param", 1.2e12 / totals[name], unit="bytes/param",
                    model=name, scale="exact", method="full", params={"paper_bytes": 1.2e12})
    return out


def _parts(mem) -> dict:
    """Bytes by part of a bench.memory estimate; model_states = weights + gradients + optimizer."""
    return {"weights": mem.weights, "gradients": mem.gradients, "optimizer": mem.optimizer, "states": mem.states,
            "model_states": mem.weights + mem.states, "activations": mem.activations}


def _memory_rows(rec: Recorder, claim, name, method, p, parts: dict, full: dict, seq: int) -> None:
    for part, v in parts.items():
        pp = p | {"part": part} | ({"batch": 1, "seq": seq} if part == "activations" else {})
        rec.add(claim, "train_memory_bytes", v, unit="bytes", model=name, scale="exact", method=method, params=pp)
        if method != "full":
            rec.add(claim, "memory_ratio_vs_full", v / full[part], unit="ratio", model=name, scale="exact",
                    method=method, params=pp)
