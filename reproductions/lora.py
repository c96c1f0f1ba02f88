"""LoRA group: claims L1-L6 and A2 (Hu et al. 2021, https://arxiv.org/abs/2106.09685).

Parts, in run order (each says how long it took in meta.json and report.md):
1. exact (meta device, no weights): LoRA parameter counts of GPT-3 175B, LLaMA-7B, GPT-2 M/L, mt0-large (L2);
   the per-matrix ratio 2r/d; the memory model (bench.memory) for GPT-3 and LLaMA-7B (L3, A2).
2. L1 on a ladder rung: LoRA at step 0 equals the base bit for bit; scaling = alpha/r.
3. memory on the rung (A2, L3, L4): full FT vs LoRA r in RANKS vs adapters, predicted by bench.memory and
   measured from live tensors after one AdamW step; step time and peak RSS as timings.
4. knowledge task (L4, L5, L1, L3, L6): full FT and LoRA at every rank, >= 3 seeds; merged vs unmerged;
   adapter vs full checkpoint files; the full-FT update's singular spectrum.
5. planted rank-k task (L6): a teacher = rung + a rank-k update on the value third of every c_attn; students
   (full FT, LoRA at r below and above k) distil it.
Parts 4 and 5 are independent (method, r, seed) jobs, run in `workers` processes of one thread each.
6. latency (L5): base vs merged vs unmerged, round-robin, timings only.

GPT-2 rungs fuse q, k, v into one Conv1D (`c_attn`, d -> 3d); LoRA adapts it whole (the family default), so
"q,v" of the paper becomes "q,k,v" here. GPT-3 is modelled with an OPTConfig (separate q/k/v/out_proj, GELU,
pre-LN, learned positions: 2 more position rows than GPT-3, +24,576 parameters) so the targets are nameable.
"""

from __future__ import annotations

import copy
import json
import math
import statistics
import struct
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from bench import BenchError
from bench.repro import RunContext, settings_with_overrides
from bench.schema import Recorder

GROUP = "lora"
CLAIMS = ("A2", "L1", "L2", "L3", "L4", "L5", "L6")
# Tolerance bands for `bench regress` on the smoke profile: counts and bytes are exact; accuracies and KLs
# move with float reduction order (thread count), so they get bands.
REGRESS = [
    ("lora_*", 0.0, 0.0), ("adapter_*", 0.0, 0.0), ("total_params", 0.0, 0.0), ("full_weights_*", 0.0, 0.0),
    ("paper_*", 0.0, 1e-9), ("train_memory_bytes", 0.0, 1e-9), ("memory_*", 0.0, 1e-6), ("checkpoint_*", 0.0, 1e-6),
    ("l1_merged_delta_max_abs_err", 1e-6, 0.0), ("l1_*", 0.0, 0.0),
    ("l4_trainable_params*", 0.0, 0.0), ("l4_memory_*", 0.0, 0.0), ("l4_train_memory_bytes", 0.0, 1e-9),
    ("l4_chance", 0.0, 1e-9), ("l4_*", 0.05, 0.1),
    ("l5_*_abs_diff", 1e-4, 0.0), ("l5_unloaded_extra_params", 0.0, 0.0),
    ("l6_energy*", 0.05, 0.1), ("l6_*", 0.05, 0.2),
]
ALPHA = 8.0            # fixed across ranks, as in the paper ("set alpha to the first r we try and do not tune it")
GiB, MiB = 2**30, 2**20


@dataclass(frozen=True)
class Settings:
    rung: str                                   # ladder rung for every measured part
    ranks: tuple[int, ...] = (1, 2, 4, 8, 16, 64)
    main_r: int = 8                             # the rank of L5 / L1-after-training / the adapter file
    adapter_size: int = 16                      # bottleneck of the adapters baseline (A2)
    mem_batch: int = 8                          # memory / step-time measurement batch (random tokens)
    mem_seq: int = 128
    step_reps: int = 5                          # timed steps per method, round-robin
    ft_steps: int = 120                         # knowledge-task fine-tuning
    ft_batch: int = 32
    lr_full: float = 5e-4
    lr_lora: float = 3e-3
    attributes: str = "all"
    fmt: str = "discrete"                       # hand-written prompt the rung never saw: a new task format
    l6_k: int = 4                               # planted rank
    l6_ranks: tuple[int, ...] = (1, 2, 4, 8)
    l6_target: str = "c_attn.v"                 # planted matrices: the value third of every c_attn (see plant)
    l6_target_kl: float = 0.1                   # planted strength: KL(teacher || base) per token, nats
    l6_steps: int = 100
    l6_batch: int = 16
    l6_seq: int = 32
    l6_eval_rows: int = 64
    l6_lr_full: float = 1e-3
    l6_lr_lora: float = 3e-2
    latency_reps: int = 20
    workers: int = 1                            # processes for the fine-tuning runs (1 thread each)
    threads: int | None = 1                     # torch threads for the whole run ($BENCH_THREADS overrides):
                                                # these models are too small to gain from 2, and next to other
                                                # jobs 2 spinning OpenMP threads ran 5-7x slower than 1 here


SETTINGS = {
    "smoke": Settings(rung="smoke-b", mem_batch=4, mem_seq=64, step_reps=2, ft_steps=30, ft_batch=16,
                      l6_steps=40, l6_batch=8, l6_seq=32, l6_eval_rows=32, latency_reps=3),
    "cpu": Settings(rung="cpu-1m", workers=2, l6_steps=200, l6_batch=16),
    "gpu": Settings(rung="gpu-10m", mem_batch=16, ft_steps=300, l6_steps=300, l6_batch=32, l6_seq=64),
}


# ============================================================================================ 1. exact

def _gpt3_config():
    from transformers import OPTConfig
    return OPTConfig(hidden_size=12288, num_hidden_layers=96, num_attention_heads=96, ffn_dim=4 * 12288,
                     vocab_size=50257, max_position_embeddings=2048, word_embed_proj_dim=12288,
                     activation_function="gelu", do_layer_norm_before=True, enable_bias=True)


def _llama7b_config():
    from transformers import LlamaConfig
    return LlamaConfig(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, intermediate_size=11008,
                       vocab_size=32000, tie_word_embeddings=False)


def _gpt2_config(d, layers, heads):
    from transformers import GPT2Config
    return GPT2Config(n_embd=d, n_layer=layers, n_head=heads, vocab_size=50257, n_positions=1024)


def _mt0_large():
    """mt0-large (mT5-large shapes). transformers 5 ties mT5's lm_head to the shared embedding; the real
    checkpoint does not, so the head gets its own (meta) tensor: 1,229,581,312 parameters, as peft's README
    prints (1,231,940,608 with LoRA r = 8 on q,v)."""
    from transformers import MT5Config

    from bench.memory import meta_model
    m = meta_model(MT5Config(d_model=1024, d_kv=64, d_ff=2816, num_layers=24, num_decoder_layers=24,
                             num_heads=16, vocab_size=250112, feed_forward_proj="gated-gelu"))
    m.lm_head.weight = nn.Parameter(torch.empty_like(m.shared.weight, device="meta"))
    return m


# name -> (builder, {targets label: module names})
META_MODELS = {
    "gpt3-175b": (lambda: _gpt3_config(), {"q,v": ("q_proj", "v_proj"),
                                           "q,k,v,o": ("q_proj", "k_proj", "v_proj", "out_proj")}),
    "llama-7b": (lambda: _llama7b_config(), {"q,v": ("q_proj", "v_proj"),
                                             "q,k,v,o": ("q_proj", "k_proj", "v_proj", "o_proj")}),
    "gpt2-medium": (lambda: _gpt2_config(1024, 24, 16), {"c_attn": ("c_attn",)}),
    "gpt2-large": (lambda: _gpt2_config(1280, 36, 20), {"c_attn": ("c_attn",)}),
    "mt0-large": (_mt0_large, {"q,v": ("q", "v")}),
}
L2_GRID = [("gpt3-175b", 1, "q,v"), ("gpt3-175b", 4, "q,v"), ("gpt3-175b", 8, "q,v"), ("gpt3-175b", 4, "q,k,v,o"),
           ("llama-7b", 8, "q,v"), ("llama-7b", 16, "q,k,v,o"), ("gpt2-medium", 4, "c_attn"),
           ("gpt2-large", 4, "c_attn"), ("mt0-large", 8, "q,v")]
RATIO_D = (64, 128, 192, 320, 768, 1024, 1280, 4096, 12288)
RATIO_R = (1, 2, 4, 8, 16, 64)


_META_CACHE: dict[str, nn.Module] = {}


def _meta(name: str) -> nn.Module:
    """A fresh meta-device model (built once per process, then deep-copied: building 96 GPT-3 layers costs
    seconds, copying a fraction of that)."""
    from bench.memory import meta_model
    if name not in _META_CACHE:
        built = META_MODELS[name][0]()
        _META_CACHE[name] = built if isinstance(built, nn.Module) else meta_model(built)
    return copy.deepcopy(_META_CACHE[name])


def _lora(model, r, targets, alpha=ALPHA):
    from bench.methods import apply, make_config
    return apply(model, make_config("lora", r=r, alpha=alpha, target_modules=tuple(targets)))


def exact_counts(rec: Recorder) -> dict:
    """L2 counts and the per-matrix ratio table, then the memory model at paper scale (A2, L3)."""
    out = l2_counts(rec)
    out["memory"] = paper_memory(rec, out["totals"])
    _META_CACHE.clear()
    return out


def l2_counts(rec: Recorder) -> dict:
    """L2: LoRA parameters of paper-scale configs (meta device), adapter bytes, and 2r/d per matrix."""
    from bench.methods import trainable_parameters

    out = {"totals": {}}
    for name, r, label in L2_GRID:
        model = _meta(name)
        total = trainable_parameters(model)[1]
        if name not in out["totals"]:
            out["totals"][name] = total
            rec.add("L2", "total_params", total, unit="params", model=name, scale="exact", method="full")
        n = trainable_parameters(_lora(model, r, META_MODELS[name][1][label]))[0]
        p = {"r": r, "targets": label}
        rec.add("L2", "lora_trainable_params", n, unit="params", model=name, scale="exact", method="lora", params=p)
        rec.add("L2", "adapter_bytes_fp16", 2 * n, unit="bytes", model=name, scale="exact", method="lora", params=p)
        rec.add("L2", "adapter_bytes_fp32", 4 * n, unit="bytes", model=name, scale="exact", method="lora", params=p)
        rec.add("L2", "lora_trainable_share", n / total, unit="ratio", model=name, scale="exact", method="lora", params=p)
    for name in ("llama-7b", "gpt3-175b"):
        for b, tag in ((2, "fp16"), (4, "fp32")):
            rec.add("L2", f"full_weights_bytes_{tag}", b * out["totals"][name], unit="bytes", model=name,
                    scale="exact", method="full")
    # per-matrix ratio: our LoRA on one bias-free d x d Linear vs 2r/d
    for d in RATIO_D:
        for r in RATIO_R:
            if r > d:
                continue
            with torch.device("meta"):
                m = nn.ModuleDict({"proj": nn.Linear(d, d, bias=False)})
            n = trainable_parameters(_lora(m, r, ("proj",)))[0]
            p = {"d": d, "r": r}
            rec.add("L2", "lora_ratio_per_matrix", n / d**2, unit="ratio", model=f"linear-{d}", scale="exact",
                    method="lora", params=p)
            rec.add("L2", "lora_ratio_error_vs_2r_over_d", abs(n / d**2 - 2 * r / d), unit="ratio",
                    model=f"linear-{d}", scale="exact", method="lora", params=p)
    return out


def paper_memory(rec: Recorder, totals: dict) -> dict:
    """The memory model at paper scale: mixed-precision AdamW (ZeRO's 16 B per trainable parameter), GPT-3 175B
    (L3: LoRA r = 4 on q,v, the paper's 350 GB / 35 MB setting) and LLaMA-7B (A2: r = 8 on q,v)."""
    from bench.memory import Setup, estimate
    from bench.methods import apply, make_config

    plans = [("L3", "gpt3-175b", 4, "q,v", 2048), ("A2", "llama-7b", 8, "q,v", 2048)]
    out = {}
    for claim, name, r, label, seq in plans:
        setup = Setup(precision="mixed", batch=1, seq_len=seq, device="cuda")
        variants = {"full": apply(_meta(name), make_config("full")),
                    "lora": _lora(_meta(name), r, META_MODELS[name][1][label]),
                    "adapters": apply(_meta(name), make_config("adapters", size=64))}
        mems = {k: estimate(m, setup) for k, m in variants.items()}
        out[name] = {k: v.parts() | {"states": v.states} for k, v in mems.items()}
        out[name]["assumptions"] = mems["full"].assumptions
        for method, mem in mems.items():
            p = {"precision": "mixed", "source": "model"} | ({"r": r, "targets": label} if method == "lora" else {}) \
                | ({"size": 64} if method == "adapters" else {})
            parts = {"weights": mem.weights, "gradients": mem.gradients, "optimizer": mem.optimizer,
                     "states": mem.states, "model_states": mem.weights + mem.states,
                     "activations": mem.activations}
            for part, v in parts.items():
                pp = p | {"part": part} | ({"batch": 1, "seq": seq} if part == "activations" else {})
                rec.add(claim, "train_memory_bytes", v, unit="bytes", model=name, scale="exact", method=method, params=pp)
                full = getattr(mems["full"], part) if part not in ("states", "model_states") else (
                    mems["full"].states + (mems["full"].weights if part == "model_states" else 0))
                if method != "full":
                    rec.add(claim, "memory_ratio_vs_full", v / full, unit="ratio", model=name, scale="exact",
                            method=method, params=pp)
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


# ============================================================================================ rung helpers

def _load(ctx: RunContext, s: Settings):
    """(base model, tokenizer, world or None, name). --model may name another ladder rung or a local folder;
    the knowledge and planted tasks need the world's tokenizer, so they run on ladder rungs only."""
    from bench import ladder as L
    from bench.models import load_model
    name = ctx.model or s.rung
    model, tok = load_model(name, ctx.profile.ladder)
    world = L.load_world(name) if name in L.SPECS else None
    model.eval()
    return model, tok, world, name


def _width(model) -> int:
    from bench.methods.common import dims
    return dims(model)["hidden"]


def _ranks(ranks, model) -> tuple[int, ...]:
    """Ranks capped at the width (r <= min(in, out) of c_attn), deduplicated."""
    d = _width(model)
    return tuple(sorted({min(r, d) for r in ranks}))


def _adapt(base, method: str, r: int = 0, seed: int = 0, adapter_size: int = 16, targets=None):
    from bench.methods import apply, make_config
    model = copy.deepcopy(base)
    torch.manual_seed(seed)
    if method == "full":
        return apply(model, make_config("full"))
    if method == "lora":
        return apply(model, make_config("lora", r=r, alpha=ALPHA, target_modules=targets))
    if method == "adapters":
        return apply(model, make_config("adapters", size=min(adapter_size, _width(base))))
    raise BenchError(f"lora group: unknown method {method!r}")


def _n_trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _tokens(model, batch, seq, seed=0):
    """Random token ids (B, T), never the pad id (transformers warns about unmasked padding otherwise)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, model.config.vocab_size, (batch, seq), generator=g)
    pad = getattr(model.config, "pad_token_id", None)
    if pad is not None:
        ids[ids == pad] = (pad + 1) % model.config.vocab_size
    return ids


# ============================================================================================ 2. L1 at step 0

@torch.no_grad()
def l1_step0(rec: Recorder, base, name: str, ranks, seeds):
    ids = _tokens(base, 4, 32, seed=123)
    ref = base(input_ids=ids).logits
    for seed in seeds:
        for r in ranks:
            from bench.methods.lora import lora_layers
            m = _adapt(base, "lora", r, seed).eval()
            out = m(input_ids=ids).logits
            layers = lora_layers(m)
            p = {"r": r, "alpha": ALPHA}
            rec.add("L1", "l1_step0_max_abs_diff", float((out - ref).abs().max()), unit="abs", model=name,
                    method="lora", seed=seed, scale="exact", params=p)
            rec.add("L1", "l1_step0_bitwise_equal", float(torch.equal(out, ref)), unit="bool", model=name,
                    method="lora", seed=seed, scale="exact", params=p)
            rec.add("L1", "l1_lora_B_abs_max_at_init", max(float(l.lora_B.weight.abs().max()) for _, l in layers),
                    unit="abs", model=name, method="lora", seed=seed, scale="exact", params=p)
            rec.add("L1", "l1_lora_A_abs_max_at_init", max(float(l.lora_A.weight.abs().max()) for _, l in layers),
                    unit="abs", model=name, method="lora", seed=seed, scale="exact", params=p)
            rec.add("L1", "l1_scaling_abs_err", max(abs(l.scaling - ALPHA / r) for _, l in layers), unit="abs",
                    model=name, method="lora", seed=seed, scale="exact", params=p)


# ============================================================================================ 3. memory

def memory_sweep(rec: Recorder, base, name: str, s: Settings, ranks) -> dict:
    """Predicted (bench.memory) vs measured bytes by part, one AdamW step, full / LoRA r / adapters;
    then step times round-robin. Returns {(method, r): measured total bytes}."""
    from bench.memory import Setup, estimate, measure_step

    variants = [("full", 0)] + [("lora", r) for r in ranks] + [("adapters", 0)]
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    setup = Setup(precision="fp32", batch=s.mem_batch, seq_len=s.mem_seq, device=dev)
    ids = _tokens(base, s.mem_batch, s.mem_seq).to(dev)
    pred, meas, live = {}, {}, {}
    for method, r in variants:
        m = _adapt(base, method, r, seed=0, adapter_size=s.adapter_size).to(dev)
        pred[(method, r)] = estimate(m, setup)
        got = measure_step(m, ids)
        meas[(method, r)] = got
        live[(method, r)] = m
    full_pred, full_meas = pred[("full", 0)], meas[("full", 0)].memory
    totals = {}
    for (method, r), pm in pred.items():
        mm = meas[(method, r)].memory
        base_p = {"batch": s.mem_batch, "seq": s.mem_seq, "precision": "fp32", "optimizer": "adamw"}
        if method == "lora":
            base_p["r"] = r
        if method == "adapters":
            base_p["size"] = min(s.adapter_size, _width(base))
        for source, mem, ref in (("model", pm, full_pred), ("measured", mm, full_meas)):
            parts = mem.parts() | {"states": mem.states}
            refs = ref.parts() | {"states": ref.states}
            for part, v in parts.items():
                if part == "int8_overhead":
                    continue
                p = base_p | {"part": part, "source": source}
                for claim in ("A2", "L3"):
                    rec.add(claim, "train_memory_bytes", v, unit="bytes", model=name, method=method, scale="toy",
                            params=p)
                    if method != "full" and refs[part] > 0:
                        rec.add(claim, "memory_ratio_vs_full", v / refs[part], unit="ratio", model=name,
                                method=method, scale="toy", params=p)
        for part in ("weights", "gradients", "optimizer", "activations", "total"):
            mv = getattr(mm, part) if part != "total" else mm.total
            pv = getattr(pm, part) if part != "total" else pm.total
            if mv > 0:
                rec.add("A2", "memory_model_over_measured", pv / mv, unit="ratio", model=name, method=method,
                        scale="toy", params=base_p | {"part": part})
        totals[(method, r)] = mm.total
        rec.add("L3", "peak_rss_delta_bytes" if dev == "cpu" else "peak_cuda_bytes", meas[(method, r)].peak_bytes,
                unit="bytes", model=name, method=method, scale="toy", params=base_p, timing=True)
        rec.add("L3", "peak_over_model_total", meas[(method, r)].peak_bytes / max(pm.total - pm.weights, 1),
                unit="ratio", model=name, method=method, scale="toy",
                params=base_p | {"note": "peak minus before-step RSS / predicted non-weight bytes"}, timing=True)
    # step times, round-robin so that foreign load hits every variant alike
    opts = {k: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-5) for k, m in live.items()}
    times = {k: [] for k in live}
    for _ in range(s.step_reps):
        for k, m in live.items():
            t0 = time.perf_counter()
            m(input_ids=ids, labels=ids, use_cache=False).loss.backward()
            opts[k].step()
            opts[k].zero_grad(set_to_none=True)
            if dev == "cuda":
                torch.cuda.synchronize()
            times[k].append(time.perf_counter() - t0)
    full_t = statistics.median(times[("full", 0)])
    import os
    for (method, r), ts in times.items():
        p = {"batch": s.mem_batch, "seq": s.mem_seq, "threads": torch.get_num_threads(),
             "load_average_1m": round(os.getloadavg()[0], 2)} | ({"r": r} if method == "lora" else {})
        rec.add("L3", "step_time_s", statistics.median(ts), unit="s", model=name, method=method, scale="toy",
                params=p, timing=True)
        rec.add("L3", "step_time_ratio_vs_full", statistics.median(ts) / full_t, unit="ratio", model=name,
                method=method, scale="toy", params=p, timing=True)
    return totals


# ============================================================================================ 4. knowledge task

def _svd_energy(w: torch.Tensor, ranks) -> dict[int, float]:
    sv = torch.linalg.svdvals(w.double())
    e = sv**2
    cum = torch.cumsum(e, 0) / e.sum()
    return {r: float(cum[min(r, len(cum)) - 1]) for r in ranks}


def _c_attn_weights(model) -> list[torch.Tensor]:
    from bench.methods.common import blocks
    _, bl = blocks(model)
    out = []
    for blk in bl:
        mod = blk.attn.c_attn
        mod = getattr(mod, "base", mod)
        out.append(mod.weight.detach().clone())
    return out


def _file_size_error(path: Path, model) -> tuple[int, int, int]:
    """(file bytes, header bytes, file - (8 + header + numel * 4 of the model's LoRA tensors))."""
    raw = path.read_bytes()
    header_len = struct.unpack("<Q", raw[:8])[0]
    from bench.methods.lora import lora_layers
    data = sum(l.lora_A.weight.numel() * l.lora_A.weight.element_size() +
               l.lora_B.weight.numel() * l.lora_B.weight.element_size() for _, l in lora_layers(model))
    return len(raw), header_len, len(raw) - (8 + header_len + data)


# Fine-tuning runs are independent jobs: (method, r, seed). They run in this process, or in `workers` spawned
# processes of one thread each (two 1-thread trainings on 2 cores beat one 2-thread training for models this
# small). Each process builds the same environment from the rung's name, so results do not depend on where a
# job ran.

def make_env(name: str, s: Settings, plant_scale: float | None = None, base=None, tok=None) -> dict:
    """Everything a job needs: the rung, the knowledge task, the planted task's rows and teacher."""
    from bench import ladder as L
    from bench.data.tasks import knowledge_task
    if base is None:
        base, tok = L.load_rung(name, progress=False)
    world = L.load_world(name)
    rows = L.pretraining_rows(world, tok, tokens=(s.l6_eval_rows + s.l6_steps * s.l6_batch) * s.l6_seq,
                              seq_len=s.l6_seq)
    env = {"name": name, "s": s, "base": base.eval(), "tok": tok, "world": world,
           "task": knowledge_task(world, tok, attributes=s.attributes, fmt=s.fmt),
           "l6_eval": rows[:s.l6_eval_rows], "l6_train": rows[s.l6_eval_rows:],
           "ids": _tokens(base, 4, 32, seed=7), "w0": _c_attn_weights(base)}
    if plant_scale is not None:
        env["teacher"] = plant(base, min(s.l6_k, _width(base)), plant_scale, env["l6_eval"], target=s.l6_target)[0]
    return env


_ENV: dict = {}


def _init_worker(name: str, s: Settings, plant_scale, threads: int):
    import logging
    import os
    logging.getLogger("transformers").setLevel(logging.ERROR)
    os.environ["BENCH_NO_PROGRESS"] = "1"
    torch.set_num_threads(threads)          # this worker process only
    _ENV.update(make_env(name, s, plant_scale))


def _call(job):
    kind, method, r, seed = job
    return (_knowledge_job if kind == "knowledge" else _planted_job)(_ENV, method, r, seed)


def run_jobs(env: dict, jobs: list, workers: int, progress, desc: str) -> list[dict]:
    """Results of `jobs` in their order; in-process when workers <= 1."""
    bar = progress(total=len(jobs), desc=desc)
    if workers <= 1:
        _ENV.clear()
        _ENV.update(env)
        out = []
        for job in jobs:
            out.append(_call(job))
            bar.update(1)
        bar.close()
        return out
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    s = env["s"]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
                             initargs=(env["name"], s, env.get("plant_scale"), 1)) as ex:
        futs = [ex.submit(_call, job) for job in jobs]
        for _ in as_completed(futs):
            bar.update(1)
        bar.close()
        return [f.result() for f in futs]


def _knowledge_job(env, method: str, r: int, seed: int) -> dict:
    """Fine-tune on the knowledge task; score the test people. Full FT also returns its update's spectrum
    (L6); LoRA at the main rank returns the merge checks (L5, L1) and, for the first seed, its file (L3)."""
    from bench.train import TrainConfig, evaluate_classification, train
    s, base = env["s"], env["base"]
    m = _adapt(base, method, r, seed)
    cfg = TrainConfig(lr=s.lr_full if method == "full" else s.lr_lora, steps=s.ft_steps, batch_size=s.ft_batch,
                      warmup=max(1, s.ft_steps // 10), decay="cosine", seed=seed, progress=False)
    res = train(m, env["task"]["train"], cfg)
    out = {"acc": evaluate_classification(m, env["task"]["test"]) if res.diverged_at is None else math.nan,
           "final_loss": res.final.get("final_loss", math.nan), "wall_s": res.wall_s, "lr": cfg.lr,
           "steps": cfg.steps}
    if method == "full":
        ranks_e = sorted(set(_ranks(s.ranks, base)) | {8})
        out["spectra"] = []
        for li, (w_ft, w_0) in enumerate(zip(_c_attn_weights(m), env["w0"])):
            dw = w_ft.cpu() - w_0.cpu()                                     # (d, 3d)
            g = torch.Generator().manual_seed(1000 * seed + li)
            out["spectra"].append((li, _svd_energy(dw, ranks_e),
                                   _svd_energy(torch.randn(dw.shape, generator=g, dtype=torch.float64), ranks_e),
                                   torch.linalg.svdvals(dw.double()).tolist()))
        with tempfile.TemporaryDirectory() as tmp:
            m.cpu().save_pretrained(tmp)
            out["full_file_bytes"] = (Path(tmp) / "model.safetensors").stat().st_size
    if method == "lora" and r == min(s.main_r, max(_ranks(s.ranks, base))):
        out["after"] = _after_training(m, base, env["ids"])
        out["lora_state"] = {k: v.detach().cpu().clone() for k, v in m.state_dict().items() if "lora_" in k}
    return out


def knowledge_runs(rec: Recorder, env: dict, results: list[dict], jobs: list, seeds, mem_totals: dict) -> dict:
    """Record L4 (quality vs r), L5/L1 (merge), L3 (files), L6 (full-FT update spectrum) from job results."""
    from bench.train import evaluate_classification
    s, base, name = env["s"], env["base"], env["name"]
    ranks = _ranks(s.ranks, base)
    test = env["task"]["test"]
    data = f"knowledge-{s.fmt}-{s.attributes}"
    chance = float(sum(1 / len(c) for c in test["candidates"]) / len(test))
    rec.add("L4", "l4_chance", chance, unit="accuracy", model=name, data=data, scale="toy")
    rec.add("L4", "l4_zero_shot_accuracy", evaluate_classification(base, test), unit="accuracy", model=name,
            data=data, scale="toy")
    acc: dict[tuple[str, int], list[float]] = {}
    spectra = []
    out = {}
    for (_, method, r, seed), res in zip(jobs, results):
        acc.setdefault((method, r), []).append(res["acc"])
        p = ({"r": r, "alpha": ALPHA} if method == "lora" else {}) | {"lr": res["lr"], "steps": res["steps"]}
        rec.add("L4", "l4_test_accuracy", res["acc"], unit="accuracy", model=name, data=data, method=method,
                seed=seed, scale="toy", params=p)
        rec.add("L4", "l4_final_train_loss", res["final_loss"], unit="nats", model=name, data=data, method=method,
                seed=seed, scale="toy", params=p)
        rec.add("L4", "l4_train_wall_s", res["wall_s"], unit="s", model=name, data=data, method=method, seed=seed,
                scale="toy", params=p, timing=True)
        spectra += [(seed, *sp) for sp in res.get("spectra", [])]
        if "full_file_bytes" in res and seed == seeds[0]:
            out["full_file_bytes"] = res["full_file_bytes"]
        if "after" in res:
            a = res["after"]
            pr = {"r": r, "alpha": ALPHA}
            for metric in ("l5_merged_vs_unmerged_max_abs_diff", "l5_unmerge_roundtrip_max_abs_diff",
                           "l5_unloaded_vs_unmerged_max_abs_diff", "l5_unloaded_extra_params"):
                rec.add("L5", metric, a[metric], unit="params" if metric.endswith("params") else "abs", model=name,
                        data=data, method="lora", seed=seed, scale="exact", params=pr)
            rec.add("L1", "l1_merged_delta_max_abs_err", a["l1_merged_delta_max_abs_err"], unit="abs", model=name,
                    data=data, method="lora", seed=seed, scale="exact", params=pr)
            if seed == seeds[0]:
                rec.add("L3", "adapter_file_size_error_bytes", a["file_error"], unit="bytes", model=name,
                        method="lora", scale="exact", params=pr | {"header_bytes": a["header_bytes"]})
                out["adapter_file_bytes"] = {r: a["file_bytes"]}
                trained = _adapt(base, "lora", r, seed)
                trained.load_state_dict(res["lora_state"], strict=False)
                out["trained_lora"] = trained.eval()
    # full-model vs adapter files (L3)
    if "full_file_bytes" in out:
        rec.add("L3", "checkpoint_file_bytes", out["full_file_bytes"], unit="bytes", model=name, method="full",
                scale="toy", params={"dtype": "fp32"})
        for r, b in out.get("adapter_file_bytes", {}).items():
            rec.add("L3", "checkpoint_file_bytes", b, unit="bytes", model=name, method="lora", scale="toy",
                    params={"dtype": "fp32", "r": r})
            rec.add("L3", "checkpoint_ratio_vs_full", b / out["full_file_bytes"], unit="ratio", model=name,
                    method="lora", scale="toy", params={"r": r})
    # L4 derived rows (seed means)
    means = {k: _nanmean(v) for k, v in acc.items()}
    lora_means = {r: means[("lora", r)] for r in ranks}
    trainable = {r: _n_trainable(_adapt(base, "lora", r)) for r in ranks}
    for r in ranks:
        p = {"r": r, "alpha": ALPHA}
        rec.add("L4", "l4_test_accuracy_mean", lora_means[r], unit="accuracy", model=name, data=data, method="lora",
                scale="toy", params=p)
        rec.add("L4", "l4_trainable_params", trainable[r], unit="params", model=name, method="lora", scale="toy",
                params=p)
        if ("lora", r) in mem_totals:
            rec.add("L4", "l4_train_memory_bytes", mem_totals[("lora", r)], unit="bytes", model=name, method="lora",
                    scale="toy", params=p | {"batch": s.mem_batch, "seq": s.mem_seq})
    rec.add("L4", "l4_test_accuracy_mean", means[("full", 0)], unit="accuracy", model=name, data=data,
            method="full", scale="toy")
    vals = [v for v in lora_means.values() if math.isfinite(v)]
    spread = (max(vals) - min(vals)) if len(vals) == len(lora_means) else math.nan
    rec.add("L4", "l4_quality_spread_over_r", spread, unit="accuracy", model=name, data=data, method="lora",
            scale="toy", params={"ranks": list(ranks)})
    rec.add("L4", "l4_best_lora_minus_chance", (max(vals) - chance) if vals else math.nan, unit="accuracy",
            model=name, data=data, method="lora", scale="toy")
    tp = [trainable[r] for r in ranks]
    rec.add("L4", "l4_trainable_params_increasing", float(all(a < b for a, b in zip(tp, tp[1:]))), unit="bool",
            model=name, method="lora", scale="toy")
    mt = [mem_totals.get(("lora", r), math.nan) for r in ranks]
    rec.add("L4", "l4_memory_nondecreasing", float(all(a <= b for a, b in zip(mt, mt[1:]))), unit="bool",
            model=name, method="lora", scale="toy")
    # L6: spectrum of the full-FT update (the PCA picture)
    ranks_e = sorted(set(ranks) | {8})
    for r in ranks_e:
        rec.add("L6", "l6_fullft_energy_top_r", statistics.mean(sp[2][r] for sp in spectra), unit="share", model=name,
                data=data, method="full", scale="toy", params={"r": r, "matrix": "c_attn"})
        rec.add("L6", "l6_random_energy_top_r", statistics.mean(sp[3][r] for sp in spectra), unit="share", model=name,
                method="-", scale="toy", params={"r": r, "matrix": "c_attn"})
    for seed, li, e_dw, _, _ in spectra:
        rec.add("L6", "l6_fullft_energy_top8", e_dw[8], unit="share", model=name, data=data, method="full", seed=seed,
                scale="toy", params={"layer": li, "matrix": "c_attn"})
    ratio = statistics.mean(sp[2][8] for sp in spectra) / statistics.mean(sp[3][8] for sp in spectra)
    rec.add("L6", "l6_energy_top8_over_random", ratio, unit="ratio", model=name, data=data, method="full", scale="toy")
    return out


def _after_training(m, base, ids) -> dict:
    """L5 merged == unmerged == merge_and_unload; L1 merged weight = W0 + s*BA; L3 adapter file = 8 + header +
    numel * 4 bytes."""
    from bench.methods import merge, merge_and_unload, save_trained, unmerge
    from bench.methods.lora import lora_layers
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
        out["file_bytes"], out["header_bytes"], out["file_error"] = _file_size_error(
            Path(tmp) / "adapter_model.safetensors", m)
    return out


def _nanmean(v):
    v = [x for x in v if math.isfinite(x)]
    return statistics.mean(v) if v else math.nan


# ============================================================================================ 5. planted rank k

class _Distil(nn.Module):
    """Student trained to match a frozen teacher's next-token distributions: loss = KL(teacher || student)
    per token. Looks like a causal LM to bench.train (`.loss`, `.logits`)."""

    def __init__(self, student, teacher):
        super().__init__()
        self.student, self.teacher = student, teacher
        for q in teacher.parameters():
            q.requires_grad_(False)

    def forward(self, input_ids, attention_mask=None, labels=None):
        s = self.student(input_ids=input_ids, attention_mask=attention_mask).logits      # (B, T, V)
        with torch.no_grad():
            t = self.teacher(input_ids=input_ids, attention_mask=attention_mask).logits  # (B, T, V)
        kl = F.kl_div(F.log_softmax(s.float(), -1), F.log_softmax(t.float(), -1), log_target=True,
                      reduction="none").sum(-1)                                           # (B, T)
        mask = torch.ones_like(kl) if attention_mask is None else attention_mask.float()
        return SimpleNamespace(loss=(kl * mask).sum() / mask.sum(), logits=s)


@torch.no_grad()
def _kl(student, teacher, rows) -> float:
    dev = next(student.parameters()).device
    ids = torch.tensor([r["input_ids"] for r in rows], device=dev)       # (N, T)
    return float(_Distil(student, teacher.to(dev)).eval()(input_ids=ids).loss)


def _target_inputs(model, rows, path: str) -> list[torch.Tensor]:
    """Inputs (N*T, in) that each block's `path` module sees on `rows`."""
    from bench.methods.common import blocks
    seen = []
    hooks = [blk.get_submodule(path).register_forward_pre_hook(lambda m, a: seen.append(a[0].reshape(-1, a[0].shape[-1])))
             for blk in blocks(model)[1]]
    try:
        with torch.no_grad():
            model(input_ids=torch.tensor([r["input_ids"] for r in rows]))
    finally:
        for h in hooks:
            h.remove()
    return seen


PLANT_PATHS = {"c_attn": "attn.c_attn", "c_attn.v": "attn.c_attn", "c_fc": "mlp.c_fc", "mlp.c_proj": "mlp.c_proj", "attn.c_proj": "attn.c_proj"}
# the LoRA target of the students: the planted matrices and nothing else
PLANT_LORA = {"c_attn": ("c_attn",), "c_attn.v": ("c_attn",), "c_fc": ("c_fc",), "mlp.c_proj": r".*mlp\.c_proj", "attn.c_proj": r".*attn\.c_proj"}


def plant(base, k: int, scale: float, rows, seed: int = 1234, target: str = "c_attn"):
    """Teacher = base + a rank-k update on every block's `target` Conv1D (weight (in, out)):
        dW = sum_i sigma_i u_i v_i^T,  u_i = the i-th principal direction of the inputs that W sees on `rows`,
        v_i random orthonormal, sigma_i = scale * (mean singular value of W) / (input std along u_i).
    Whitening by the input std makes every planted direction move the output by the same amount, so a rank-r
    student (r < k) can capture at most ~r/k of the change; random u_i would mostly land in directions the
    inputs barely use. Returns (teacher, [dW])."""
    from bench.methods.common import blocks
    teacher = copy.deepcopy(base)
    g = torch.Generator().manual_seed(seed)
    inputs = _target_inputs(base, rows, PLANT_PATHS[target])
    deltas = []
    with torch.no_grad():
        for blk, x in zip(blocks(teacher)[1], inputs):
            w = blk.get_submodule(PLANT_PATHS[target]).weight                  # Conv1D: (in, out)
            x = x.double() - x.double().mean(0)
            evals, evecs = torch.linalg.eigh(x.T @ x / len(x))                 # ascending
            u = evecs[:, -k:].flip(1)                                          # (in, k) top principal directions
            std = evals[-k:].flip(0).clamp_min(1e-12).sqrt()                    # (k,)
            out_dim = w.shape[1] // 3 if target == "c_attn.v" else w.shape[1]
            v, _ = torch.linalg.qr(torch.randn(out_dim, k, generator=g, dtype=torch.float64))     # (out, k)
            if target == "c_attn.v":                                           # only the value third of q|k|v
                v = torch.cat([torch.zeros(w.shape[1] - out_dim, k, dtype=torch.float64), v])
            sigma = scale * float(torch.linalg.svdvals(w.double()).mean()) / std
            dw = ((u * sigma) @ v.T).to(w.dtype)                               # (in, out), rank k
            w += dw
            deltas.append(dw)
    for q in teacher.parameters():
        q.requires_grad_(False)
    return teacher.eval(), deltas


def calibrate_plant(base, k: int, rows, target_kl: float, target: str = "c_attn") -> tuple[float, float]:
    """The planted scale whose teacher is `target_kl` nats/token from the base (geometric bracketing, then
    bisection in log scale), so that the task is equally hard on every rung. Returns (scale, KL)."""
    lo, hi = 0.0, 1.0
    while _kl(base, plant(base, k, hi, rows, target=target)[0], rows) < target_kl:
        lo, hi = hi, hi * 2
        if hi > 1e4:
            raise BenchError(f"lora: no planted rank-{k} update reaches KL {target_kl} on this model")
    for _ in range(6):
        mid = math.sqrt(lo * hi) if lo > 0 else hi / 2
        if _kl(base, plant(base, k, mid, rows, target=target)[0], rows) < target_kl:
            lo = mid
        else:
            hi = mid
    return hi, _kl(base, plant(base, k, hi, rows, target=target)[0], rows)


def _planted_job(env, method: str, r: int, seed: int) -> dict:
    from bench.train import TrainConfig, train
    s, base, teacher = env["s"], env["base"], env["teacher"]
    student = _adapt(base, method, r, seed, targets=PLANT_LORA[s.l6_target])
    cfg = TrainConfig(lr=s.l6_lr_full if method == "full" else s.l6_lr_lora, steps=s.l6_steps, batch_size=s.l6_batch,
                      warmup=max(1, s.l6_steps // 10), decay="cosine", seed=seed, grad_clip=1.0, progress=False)
    res = train(_Distil(student, teacher), env["l6_train"], cfg)
    kl = _kl(student, teacher, env["l6_eval"]) if res.diverged_at is None else math.nan
    return {"kl": kl, "lr": cfg.lr, "steps": cfg.steps, "wall_s": res.wall_s}


def calibrate_env(env: dict) -> float:
    """Pick the planted scale (KL(teacher || base) = l6_target_kl on the eval rows) and add the teacher."""
    s, base = env["s"], env["base"]
    k = min(s.l6_k, _width(base))
    scale, kl0 = calibrate_plant(base, k, env["l6_eval"], s.l6_target_kl, target=s.l6_target)
    env["plant_scale"], env["kl0"] = scale, kl0
    env["teacher"] = plant(base, k, scale, env["l6_eval"], target=s.l6_target)[0]
    return scale


def planted_runs(rec: Recorder, env: dict, results: list[dict], jobs: list) -> dict:
    s, base, name = env["s"], env["base"], env["name"]
    k = min(s.l6_k, _width(base))
    ranks = _ranks(s.l6_ranks, base)
    data = f"planted-rank{k}-{s.l6_target}"
    kl0 = env["kl0"]
    rec.add("L6", "l6_kl_base", kl0, unit="nats/token", model=name, data=data, scale="toy",
            params={"k": k, "target_kl": s.l6_target_kl}, info={"plant_scale": round(env["plant_scale"], 4)})
    kls: dict[tuple[str, int], list[float]] = {}
    for (_, method, r, seed), res in zip(jobs, results):
        kls.setdefault((method, r), []).append(res["kl"])
        p = {"k": k, "lr": res["lr"], "steps": res["steps"]} | ({"r": r, "alpha": ALPHA} if method == "lora" else {})
        rec.add("L6", "l6_kl", res["kl"], unit="nats/token", model=name, data=data, method=method, seed=seed,
                scale="toy", params=p)
        rec.add("L6", "l6_train_wall_s", res["wall_s"], unit="s", model=name, data=data, method=method, seed=seed,
                scale="toy", params=p, timing=True)
    mean = {key: _nanmean(v) for key, v in kls.items()}
    gap = {r: (mean[("lora", r)] - mean[("full", 0)]) / kl0 for r in ranks}
    for r in ranks:
        rec.add("L6", "l6_gap", gap[r], unit="share of KL(base)", model=name, data=data, method="lora", scale="toy",
                params={"k": k, "r": r})
    below = [gap[r] for r in ranks if r < k]
    above = [gap[r] for r in ranks if r >= k]
    if below and above:
        rec.add("L6", "l6_gap_below_k_minus_gap_above_k", min(below) - max(above), unit="share of KL(base)",
                model=name, data=data, method="lora", scale="toy", params={"k": k})
    if above:
        rec.add("L6", "l6_gap_above_k", max(above), unit="share of KL(base)", model=name, data=data, method="lora",
                scale="toy", params={"k": k})
    return {"kl0": kl0, "k": k}


# ============================================================================================ 6. latency

@torch.no_grad()
def latency(rec: Recorder, base, trained_lora, name: str, s: Settings):
    """Base vs merged vs unmerged LoRA forward time, round-robin, median of `latency_reps` (timings only)."""
    import os

    from bench.methods import merge_and_unload
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    unmerged = copy.deepcopy(trained_lora).eval().to(dev)
    merged = merge_and_unload(copy.deepcopy(trained_lora)).eval().to(dev)
    variants = {"base": copy.deepcopy(base).eval().to(dev), "merged": merged, "unmerged": unmerged}
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    for batch, seq in ((1, 16), (s.mem_batch, s.mem_seq)):
        ids = _tokens(base, batch, seq, seed=5).to(dev)
        for m in variants.values():
            m(input_ids=ids)                                            # warm-up
        times = {k: [] for k in variants}
        for _ in range(s.latency_reps):
            for k, m in variants.items():
                sync()
                t0 = time.perf_counter()
                m(input_ids=ids)
                sync()
                times[k].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        p = {"batch": batch, "seq": seq, "reps": s.latency_reps, "threads": torch.get_num_threads(),
             "load_average_1m": round(os.getloadavg()[0], 2), "device": dev}
        for k, v in med.items():
            rec.add("L5", "latency_s", v, unit="s", model=name, method=k, scale="toy", params=p, timing=True)
            rec.add("L5", "latency_ratio_vs_base", v / med["base"], unit="ratio", model=name, method=k, scale="toy",
                    params=p, timing=True)


# ============================================================================================ run

def run(ctx: RunContext) -> Recorder:
    import os

    from bench.train import num_threads
    s = settings_with_overrides(ctx, SETTINGS, GROUP)
    threads = int(os.environ["BENCH_THREADS"]) if os.environ.get("BENCH_THREADS") else s.threads
    with num_threads(threads):
        rec = _run(ctx, s)
    rec.notes["threads"] = threads or torch.get_num_threads()
    return rec


def _run(ctx: RunContext, s: Settings) -> Recorder:
    seeds = tuple(ctx.seeds)
    if not seeds:
        raise BenchError("lora: needs at least one seed")
    rec = ctx.recorder(GROUP, CLAIMS)
    walls = {}
    t = time.perf_counter()
    base, tok, world, name = _load(ctx, s)           # first: a bad --model fails before any work
    walls["load_or_pretrain_rung"] = time.perf_counter() - t

    t = time.perf_counter()
    ex = exact_counts(rec)
    rec.notes["memory_model_assumptions"] = {k: v["assumptions"] for k, v in ex["memory"].items()}
    walls["exact"] = time.perf_counter() - t
    ranks = _ranks(s.ranks, base)

    t = time.perf_counter()
    l1_step0(rec, base, name, ranks, seeds)
    walls["l1_step0"] = time.perf_counter() - t

    t = time.perf_counter()
    mem_totals = memory_sweep(rec, base, name, s, ranks)
    walls["memory"] = time.perf_counter() - t

    if world is not None:
        t = time.perf_counter()
        env = make_env(name, s, base=base, tok=tok)
        calibrate_env(env)
        walls["task_setup"] = time.perf_counter() - t
        t = time.perf_counter()
        k_jobs = [("knowledge", m, r, seed) for seed in seeds for m, r in [("full", 0)] + [("lora", r) for r in ranks]]
        p_jobs = [("planted", m, r, seed) for seed in seeds
                  for m, r in [("full", 0)] + [("lora", r) for r in _ranks(s.l6_ranks, base)]]
        import os
        workers = int(os.environ.get("BENCH_WORKERS", s.workers)) if (os.cpu_count() or 1) > 1 else 1
        results = run_jobs(env, p_jobs + k_jobs, workers, ctx.progress, "lora: fine-tuning runs")
        walls["fine_tuning_runs"] = time.perf_counter() - t
        rec.notes["workers"] = workers
        info = knowledge_runs(rec, env, results[len(p_jobs):], k_jobs, seeds, mem_totals)
        planted_runs(rec, env, results[:len(p_jobs)], p_jobs)
        t = time.perf_counter()
        latency(rec, base, info.pop("trained_lora"), name, s)
        walls["latency"] = time.perf_counter() - t
    rec.notes.update({"part_wall_s": {k: round(v, 1) for k, v in walls.items()}, "settings": asdict(s) | {"rung": name},
                      "ranks": list(ranks), "alpha": ALPHA,
                      "skipped": [] if world is not None else ["L4", "L5 (trained)", "L6 (need a ladder rung's world)"]})
    return rec


# ============================================================================================ report

PAPER_L2 = {("gpt3-175b", 1, "q,v"): 4_718_592, ("gpt3-175b", 8, "q,v"): 37_748_736,
            ("gpt3-175b", 4, "q,k,v,o"): 37_748_736, ("llama-7b", 8, "q,v"): 4_194_304,
            ("mt0-large", 8, "q,v"): 2_359_296}


def _p(df, key):
    from bench.schema import param
    return param(df, key)


def _sel(df, metric, **kw):
    d = df[df["metric"] == metric]
    for k, v in kw.items():
        if d.empty:
            return d
        if k.startswith("p_"):
            d = d[_p(d, k[2:]).map(lambda g, v=v: g == v)]
        else:
            d = d[d[k] == v]
    return d


def _num(x, unit=""):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "nan"
    if unit == "bytes":
        for u, f in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
            if abs(x) >= f:
                return f"{x / f:.3g} {u}"
        return f"{x:.0f} B"
    if float(x).is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:.4g}"


def write_report(out: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.fileio import atomic_savefig, atomic_write_text
    from bench.report import checks_markdown, group_verdicts
    from bench.schema import read_meta, read_results

    df, tm, meta = read_results(out), read_results(out, timing=True), read_meta(out)
    settings = meta.get("settings", {})
    rung = settings.get("rung", "?")
    L = ["# LoRA group: claims A2, L1-L6", "",
         f"Profile `{meta.get('profile')}`, seeds {meta.get('seeds')}, rung `{rung}` (GPT-2 style, fp32), "
         f"alpha = {meta.get('alpha')} for every rank, ranks {meta.get('ranks')}. Commit {meta.get('git_commit')}; "
         f"{meta.get('hardware')}; {meta.get('versions')}.", "",
         "Exact parts count on meta-device models (no weights). Toy parts run on the embedded ladder on a 2-core CPU: "
         "their verdicts are about the direction of an effect, not the paper's numbers. Timings (timings.csv) were "
         "taken on a shared machine and never enter a verdict.", "",
         "## Verdicts", "", checks_markdown(group_verdicts(GROUP, out)), ""]
    walls = meta.get("part_wall_s", {})
    if walls:
        L += ["Wall time by part: " + ", ".join(f"{k} {v:.0f} s" for k, v in walls.items()) +
              f" (total {meta.get('wall_s')} s).", ""]

    # ---- L2
    L += ["## L2: trainable parameters of LoRA (exact, meta device)", "",
          "GPT-3 175B is an OPTConfig with GPT-3's shapes (d 12288, 96 layers, 96 heads, FFN 4d, vocab 50257, "
          "2048 positions + OPT's 2 offset rows, GELU, pre-LN); LLaMA-7B a LlamaConfig (4096, 32 layers, FFN 11008, "
          "vocab 32000). GPT-2 fuses q,k,v (`c_attn`), so its LoRA adapts all three.", "",
          "| model | total params | r | targets | LoRA params | paper | adapter fp16 | adapter fp32 |",
          "|---|---|---|---|---|---|---|---|"]
    l2 = _sel(df, "lora_trainable_params", claim="L2")
    tot = {r.model: r.value for r in _sel(df, "total_params").itertuples()}
    for row in l2.itertuples():
        pr = json.loads(row.params)
        key = (row.model, pr["r"], pr["targets"])
        b16 = _sel(df, "adapter_bytes_fp16", model=row.model, params=row.params)["value"]
        b32 = _sel(df, "adapter_bytes_fp32", model=row.model, params=row.params)["value"]
        L.append(f"| {row.model} | {_num(tot.get(row.model))} | {pr['r']} | {pr['targets']} | {_num(row.value)} | "
                 f"{_num(PAPER_L2[key]) if key in PAPER_L2 else '-'} | "
                 f"{b16.iloc[0] / MiB:.2f} MiB | {b32.iloc[0] / MiB:.2f} MiB |")
    fw = {(r.model, r.metric): r.value for r in df[df["metric"].str.startswith("full_weights_bytes")].itertuples()}
    if fw:
        L += ["", "Full weights by count: " + "; ".join(
            f"{m} {k[-4:]}: {v / 1e9:.2f} GB ({v / GiB:.2f} GiB)" for (m, k), v in sorted(fw.items())) +
            ". The lecture's \"23 GB -> 8 MB\": 8 MB is LLaMA-7B's r = 8 q,v adapter in fp16 (8 MiB); no weight "
            "format of LLaMA-7B is 23 GB (13.5 GB fp16, 27 GB fp32).", ""]
    ratio = _sel(df, "lora_ratio_per_matrix")
    if not ratio.empty:
        ds = sorted({int(x) for x in _p(ratio, "d")})
        rs = sorted({int(x) for x in _p(ratio, "r")})
        L += ["Per-matrix ratio (LoRA params / d^2) of one d x d matrix, counted on our LoRA; it equals 2r/d "
              f"(max |error| {_num(_sel(df, 'lora_ratio_error_vs_2r_over_d')['value'].max())}).", "",
              "| d | " + " | ".join(f"r={r}" for r in rs) + " |", "|---|" + "---|" * len(rs)]
        for d in ds:
            cells = []
            for r in rs:
                v = ratio[(_p(ratio, "d") == d) & (_p(ratio, "r") == r)]["value"]
                cells.append(f"{v.iloc[0]:.4g}" if len(v) else "-")
            L.append(f"| {d} | " + " | ".join(cells) + " |")
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for r in rs:
            sub = ratio[_p(ratio, "r") == r]
            ax.plot(_p(sub, "d").astype(float), sub["value"], "o-", label=f"r={r}", ms=3)
        ax.set(xscale="log", yscale="log", xlabel="d (matrix is d x d)", ylabel="LoRA params / d^2 (= 2r/d)",
               title="L2: LoRA's share of one matrix falls as d grows")
        ax.legend(fontsize=7)
        atomic_savefig(out / "ratio_vs_d.png", fig)
        plt.close(fig)
        L += ["", "![ratio vs d](ratio_vs_d.png)", ""]

    # ---- memory model at paper scale
    L += ["## L3, A2: training memory by accounting (exact)", "",
          "bench.memory with mixed-precision AdamW (ZeRO's accounting: 16-bit weights and gradients, fp32 master "
          "copy + two fp32 moments = 16 bytes per trainable parameter, 2 per frozen one). Activations for one "
          "2048-token sequence without checkpointing, 2 bytes per element, are listed apart. GPT-3: LoRA r = 4 on "
          "q,v (the paper's 350 GB / 35 MB setting); LLaMA-7B: r = 8 on q,v; adapters: bottleneck 64.", "",
          "| model | method | weights | gradients | optimizer | weights+grads+optimizer | / full | activations (1 x 2048) |",
          "|---|---|---|---|---|---|---|---|"]
    tmb = _sel(df, "train_memory_bytes", scale="exact")
    for model in ("gpt3-175b", "llama-7b"):
        for method in ("full", "lora", "adapters"):
            sub = tmb[(tmb["model"] == model) & (tmb["method"] == method)]
            if sub.empty:
                continue
            v = {pt: sub[_p(sub, "part") == pt]["value"].iloc[0] for pt in
                 ("weights", "gradients", "optimizer", "model_states", "activations")}
            rr = _sel(df, "memory_ratio_vs_full", model=model, method=method, p_part="model_states")["value"]
            L.append(f"| {model} | {method} | {_num(v['weights'], 'bytes')} | {_num(v['gradients'], 'bytes')} | "
                     f"{_num(v['optimizer'], 'bytes')} | {_num(v['model_states'], 'bytes')} | "
                     f"{rr.iloc[0] if len(rr) else 1.0:.4f} | {_num(v['activations'], 'bytes')} |")
    ck = _sel(df, "checkpoint_bytes", model="gpt3-175b")
    bpp = _sel(df, "paper_full_ft_bytes_per_param")["value"]
    if not ck.empty:
        cf = ck[ck["method"] == "full"]["value"].iloc[0]
        cl = ck[ck["method"] == "lora"]["value"].iloc[0]
        L += ["", f"Paper: 1.2 TB -> 350 GB and checkpoint 350 GB -> 35 MB. Model: LoRA's weights + states are "
              f"{_num(tmb[(tmb.model == 'gpt3-175b') & (tmb.method == 'lora') & (_p(tmb, 'part') == 'model_states')]['value'].iloc[0], 'bytes')} "
              f"(the 16-bit weights; the paper's 350 GB); checkpoints {_num(cf, 'bytes')} -> {_num(cl, 'bytes')} in fp16 "
              f"({cl / MiB:.1f} MiB; ratio {cf / cl:,.0f}). The paper's 1.2 TB for full FT is "
              f"{bpp.iloc[0]:.2f} bytes per parameter: less than any Adam accounting (16 B mixed precision, 8 B with "
              "16-bit moments), so it cannot be rederived from a stated setup; it is reported, not checked.", ""]

    # ---- toy memory
    tmy = _sel(df, "train_memory_bytes", scale="toy", claim="A2")
    if not tmy.empty:
        L += [f"## A2, L3, L4: training memory measured on `{rung}` (toy)", "",
              f"One AdamW step, fp32, batch {settings.get('mem_batch')} x {settings.get('mem_seq')} tokens. "
              "Measured = live tensors: parameter storages, .grad, optimizer state, and every storage autograd saved "
              "for backward (saved_tensors_hooks, deduplicated, parameters excluded). Model = bench.memory.", "",
              "| method | weights | gradients | optimizer | activations | total (measured) | model / measured | "
              "total / full FT | step time / full FT | peak RSS delta |", "|---|---|---|---|---|---|---|---|---|---|"]
        order = []
        for row in tmy.itertuples():
            k = (row.method, json.loads(row.params).get("r"))
            if k not in order:
                order.append(k)
        bars = {}
        for method, r in order:
            sub = tmy[(tmy["method"] == method) & (_p(tmy, "r") == r) if r is not None else
                      (tmy["method"] == method)]
            meas = sub[_p(sub, "source") == "measured"]
            v = {pt: meas[_p(meas, "part") == pt]["value"].iloc[0] for pt in
                 ("weights", "gradients", "optimizer", "activations", "total")}
            bars[f"{method}{'' if r is None else f' r={r}'}"] = v
            mo = _sel(df, "memory_model_over_measured", method=method, p_part="total")
            mo = mo[_p(mo, "r") == r] if r is not None else mo
            rv = _sel(df, "memory_ratio_vs_full", claim="A2", method=method, p_part="total", p_source="measured")
            rv = rv[_p(rv, "r") == r] if r is not None else rv
            st = _sel(tm, "step_time_ratio_vs_full", method=method)
            st = st[_p(st, "r") == r] if r is not None else st
            pk = tm[tm["metric"].isin(["peak_rss_delta_bytes", "peak_cuda_bytes"]) & (tm["method"] == method)]
            pk = pk[_p(pk, "r") == r] if r is not None else pk
            L.append(f"| {method}{'' if r is None else f' r={r}'} | {_num(v['weights'], 'bytes')} | "
                     f"{_num(v['gradients'], 'bytes')} | {_num(v['optimizer'], 'bytes')} | "
                     f"{_num(v['activations'], 'bytes')} | {_num(v['total'], 'bytes')} | "
                     f"{mo['value'].iloc[0]:.4f} | {rv['value'].iloc[0] if len(rv) else 1.0:.3f} | "
                     f"{st['value'].iloc[0] if len(st) else math.nan:.2f} | "
                     f"{_num(pk['value'].iloc[0], 'bytes') if len(pk) else '-'} |")
        L += ["", "Peak RSS delta = the process' peak RSS during the step minus its RSS before; it includes "
              "temporaries the model does not count (matmul outputs freed in the forward, backward buffers, allocator "
              "slack), so it is a cross-check, not the quantity the model predicts.", ""]
        fig, ax = plt.subplots(figsize=(7, 3.8))
        names = list(bars)
        bottom = [0.0] * len(names)
        for part in ("weights", "gradients", "optimizer", "activations"):
            vals = [bars[n][part] / MiB for n in names]
            ax.bar(names, vals, bottom=bottom, label=part)
            bottom = [b + v for b, v in zip(bottom, vals)]
        ax.set(ylabel="MiB", title=f"training memory by part, measured ({rung})")
        ax.tick_params(axis="x", rotation=45, labelsize=7)
        ax.legend(fontsize=7)
        atomic_savefig(out / "memory_parts.png", fig)
        plt.close(fig)
        L += ["![memory by part](memory_parts.png)", ""]

    # ---- L1
    l1 = df[df["metric"].str.startswith("l1_")]
    if not l1.empty:
        L += ["## L1: W' = W + (alpha/r) BA, B = 0 at init (exact, on the rung)", "", "| metric | rows | max |",
              "|---|---|---|"]
        for mname, sub in l1.groupby("metric"):
            L.append(f"| {mname} | {len(sub)} | {_num(sub['value'].max())} |")
        L.append("")

    # ---- L4
    acc = _sel(df, "l4_test_accuracy")
    if not acc.empty:
        chance = _sel(df, "l4_chance")["value"].iloc[0]
        zs = _sel(df, "l4_zero_shot_accuracy")["value"].iloc[0]
        data = acc["data"].iloc[0]
        L += [f"## L4: quality vs rank (toy, `{rung}`, task `{data}`)", "",
              f"Fine-tune on the world's train people, score test people (accuracy over the candidate answers). "
              f"Chance {chance:.3f}, zero-shot {zs:.3f}. Seeds: {sorted(set(acc['seed']))}. Paper (GPT-3, q,v, "
              "r = 1/2/4/8/64): WikiSQL 73.4/73.3/73.7/73.8/73.5, MNLI 91.3/91.4/91.3/91.6/91.4.", "",
              "| method | r | accuracy mean | std | trainable params | training memory (measured) |",
              "|---|---|---|---|---|---|"]
        full = acc[acc["method"] == "full"]["value"]
        L.append(f"| full FT | - | {full.mean():.3f} | {full.std(ddof=0):.3f} | - | "
                 f"{_num(_sel(df, 'train_memory_bytes', claim='A2', method='full', p_part='total', p_source='measured')['value'].max(), 'bytes')} |")
        rs = sorted({int(x) for x in _p(acc[acc["method"] == "lora"], "r")})
        means, stds, mems, tps = [], [], [], []
        for r in rs:
            v = acc[(acc["method"] == "lora") & (_p(acc, "r") == r)]["value"]
            tp = _sel(df, "l4_trainable_params", p_r=r)["value"]
            mb = _sel(df, "l4_train_memory_bytes", p_r=r)["value"]
            means.append(v.mean()), stds.append(v.std(ddof=0))
            tps.append(tp.iloc[0] if len(tp) else math.nan), mems.append(mb.iloc[0] if len(mb) else math.nan)
            L.append(f"| LoRA | {r} | {v.mean():.3f} | {v.std(ddof=0):.3f} | {_num(tps[-1])} | {_num(mems[-1], 'bytes')} |")
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.errorbar(rs, means, yerr=stds, fmt="o-", capsize=3, label="LoRA (mean +- std over seeds)")
        ax.axhline(full.mean(), color="k", ls="--", lw=1, label="full FT")
        ax.axhline(chance, color="gray", ls=":", lw=1, label="chance")
        ax.set(xscale="log", xlabel="rank r", ylabel="test accuracy", title=f"L4: quality and memory vs r ({rung})")
        ax.set_xticks(rs, [str(r) for r in rs])
        ax.minorticks_off()
        ax2 = ax.twinx()
        ax2.plot(rs, [m / MiB for m in mems], "s--", color="tab:red", ms=3, label="training memory (MiB)")
        ax2.set_ylabel("training memory, measured (MiB)", color="tab:red")
        ax.legend(fontsize=7, loc="lower right")
        atomic_savefig(out / "l4_rank.png", fig)
        plt.close(fig)
        L += ["", "![quality and memory vs r](l4_rank.png)", ""]

    # ---- L5
    l5 = df[df["metric"].str.startswith("l5_")]
    if not l5.empty:
        L += ["## L5: merging (exact) and latency (timings)", "", "| metric | rows | max |", "|---|---|---|"]
        for mname, sub in l5.groupby("metric"):
            L.append(f"| {mname} | {len(sub)} | {_num(sub['value'].max())} |")
        lat = _sel(tm, "latency_ratio_vs_base")
        if not lat.empty:
            L += ["", "| batch x seq | base | merged / base | unmerged / base | threads | load (1 min) |",
                  "|---|---|---|---|---|---|"]
            for pj, sub in lat.groupby("params"):
                pp = json.loads(pj)
                base_s = _sel(tm, "latency_s", method="base", params=pj)["value"]
                vv = {r.method: r.value for r in sub.itertuples()}
                L.append(f"| {pp['batch']} x {pp['seq']} | {base_s.iloc[0] * 1e3:.2f} ms | {vv.get('merged', math.nan):.3f} "
                         f"| {vv.get('unmerged', math.nan):.3f} | {pp.get('threads')} | {pp.get('load_average_1m')} |")
        L.append("")
        fb = _sel(df, "checkpoint_file_bytes", scale="toy")
        if not fb.empty:
            L += ["Checkpoint files on the rung: " + ", ".join(
                f"{r.method}{'' if json.loads(r.params).get('r') is None else ' r=' + str(json.loads(r.params)['r'])}: "
                f"{_num(r.value, 'bytes')}" for r in fb.itertuples()) + ".", ""]

    # ---- L6
    kl = _sel(df, "l6_kl")
    if not kl.empty:
        kl0 = _sel(df, "l6_kl_base")["value"].iloc[0]
        k = json.loads(kl["params"].iloc[0])["k"]
        tgt = settings.get("l6_target", "c_attn")
        L += [f"## L6: intrinsic rank (toy, `{rung}`)", "",
              f"Planted task: teacher = rung + a rank-{k} update on every block's `{tgt}` (`c_attn.v`: the value third "
              "of the fused q|k|v projection), along the top principal directions of that matrix's inputs, whitened "
              "so each direction moves the output alike; its strength is set so that KL(teacher || base) = "
              f"{kl0:.4f} nats/token (target {settings.get('l6_target_kl')}; the target, the value third and the "
              "students' learning rates were chosen on a smoke-rung pilot before this run). Students (full FT, or "
              f"LoRA on the planted matrices) distil the teacher's next-token distributions on corpus text for "
              f"{settings.get('l6_steps')} steps; KL on held-out rows. gap(r) = (KL(LoRA r) - KL(full FT)) / KL(base).",
              "",
              "| student | KL mean | std | gap |", "|---|---|---|---|"]
        fk = kl[kl["method"] == "full"]["value"]
        L.append(f"| full FT | {fk.mean():.4f} | {fk.std(ddof=0):.4f} | 0 |")
        rs6 = sorted({int(x) for x in _p(kl[kl["method"] == "lora"], "r")})
        gaps = []
        for r in rs6:
            v = kl[(kl["method"] == "lora") & (_p(kl, "r") == r)]["value"]
            g = _sel(df, "l6_gap", p_r=r)["value"]
            gaps.append(g.iloc[0] if len(g) else math.nan)
            L.append(f"| LoRA r={r}{' (< k)' if r < k else ''} | {v.mean():.4f} | {v.std(ddof=0):.4f} | {gaps[-1]:.3f} |")
        en = _sel(df, "l6_fullft_energy_top_r")
        er = _sel(df, "l6_random_energy_top_r")
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        axes[0].plot(rs6, gaps, "o-")
        axes[0].axvline(k, color="gray", ls=":", label=f"planted k={k}")
        axes[0].axhline(0, color="k", lw=0.8)
        axes[0].set(xscale="log", xlabel="LoRA rank r", ylabel="gap to full FT / KL(base)",
                    title="planted rank-k update")
        axes[0].set_xticks(rs6, [str(r) for r in rs6])
        axes[0].minorticks_off()
        axes[0].legend(fontsize=7)
        if not en.empty:
            rr = [int(x) for x in _p(en, "r")]
            axes[1].plot(rr, en["value"], "o-", label="full-FT update dW (knowledge task)")
            axes[1].plot([int(x) for x in _p(er, "r")], er["value"], "s--", label="Gaussian matrix, same shape")
            axes[1].set(xscale="log", xlabel="top r singular directions", ylabel="share of energy (sum s_i^2)",
                        title="spectrum of dW = W_ft - W_0 (c_attn)")
            axes[1].legend(fontsize=7)
            L += ["", "Full fine-tuning update on the knowledge task, c_attn of every layer, mean over layers and seeds: "
                  "share of energy in the top r singular directions vs a Gaussian matrix of the same shape.", "",
                  "| r | dW | Gaussian |", "|---|---|---|"]
            for a, b in zip(en.itertuples(), er.itertuples()):
                L.append(f"| {json.loads(a.params)['r']} | {a.value:.3f} | {b.value:.3f} |")
        atomic_savefig(out / "l6_rank.png", fig)
        plt.close(fig)
        L += ["", "![intrinsic rank](l6_rank.png)", ""]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(L) + "\n")
    return path


def report(out_dir: Path) -> None:
    write_report(Path(out_dir))
