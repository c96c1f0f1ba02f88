"""The memory model's prediction (bench.memory): bytes by part for one training step, from shapes alone."""

from __future__ import annotations

from torch import nn

from bench.memory.activations import activations
from bench.memory.inputs import as_model, linear_types
from bench.memory.parts import OPTIMIZERS, PRECISIONS, Memory, Setup
from bench.numerics import nf4


def estimate(model_or_config, setup: Setup = Setup()) -> Memory:
    """Predicted bytes by part for one training step of `model_or_config` (a model, possibly on the meta device
    and possibly adapted by a bench method; or a transformers config, built on the meta device)."""
    setup.check()
    model = as_model(model_or_config)
    w_b, g_b, s_b, master, _ = PRECISIONS[setup.precision]
    n_states = OPTIMIZERS[setup.optimizer]
    lin = linear_types()
    int8_weights = set()
    int8_rows = 0
    if setup.frozen_int8 or setup.frozen_4bit:
        for name, mod in model.named_modules():
            w = getattr(mod, "weight", None)
            if isinstance(mod, lin) and isinstance(w, nn.Parameter) and not w.requires_grad and "lm_head" not in name:
                int8_weights.add(id(w))
                int8_rows += w.shape[1] if type(mod).__name__ == "Conv1D" else w.shape[0]
    mem = Memory()
    n_train_tensors = 0
    for p in model.parameters():  # tied parameters are listed once
        n = p.numel()
        if id(p) in int8_weights and setup.frozen_4bit:
            mem.weights += nf4.storage_bytes(n)  # codes + double-quantized absmax
            mem.dequant_transient = max(mem.dequant_transient, nf4.DEQUANT_BYTES * n)
        else:
            mem.weights += n * (1 if id(p) in int8_weights else w_b)
        if p.requires_grad:
            n_train_tensors += 1
            mem.gradients += n * g_b
            mem.optimizer += n * (n_states * s_b + (4 if master else 0))
    for mod in model.modules():  # weights already in NF4 (a QLoRA model): their codes and scales, as stored
        if isinstance(mod, nf4.Linear4bit):
            mem.weights += sum(b.numel() * b.element_size() for b in mod.buffers(recurse=False))
            mem.dequant_transient = max(mem.dequant_transient,
                                        nf4.DEQUANT_BYTES * mod.in_features * mod.out_features)
    if setup.optimizer != "sgd":
        mem.optimizer += 4 * n_train_tensors  # torch keeps each parameter's step count as a float32 tensor
    mem.int8_overhead = 4 * int8_rows if setup.frozen_int8 else 0.0
    if any(p.requires_grad for p in model.parameters()):
        mem.activations, mem.loss_transient = activations(model, setup)
    if setup.optimizer == "adamw":  # per tensor: (exp_avg_sq.sqrt() / c).add_(eps) holds two state-sized temps
        mem.step_transient = 2 * s_b * max((p.numel() for p in model.parameters() if p.requires_grad), default=0)
    mem.assumptions = [
        f"precision {setup.precision}: {w_b} B/weight, {g_b} B/grad, {setup.optimizer} with {n_states} state(s) of "
        f"{s_b} B" + (" + fp32 master copy (4 B)" if master else "") + " per trainable parameter",
        f"activations for batch {setup.batch} x {setup.seq_len} tokens, {PRECISIONS[setup.precision][4]} B per element, "
        f"{setup.attention} attention, " + ("activation checkpointing per block (inputs kept, one block recomputed)"
                                            if setup.checkpointing else "no activation checkpointing"),
        "frozen Linear weights in int8 + one fp32 scale per row" if setup.frozen_int8 else
        "frozen Linear weights in NF4 (0.5 B) + double-quantized absmax (1 B per 64 values, 4 B per 256 blocks)"
        if setup.frozen_4bit else "no int8 weights",
        *(["4-bit weights are dequantized for each matmul (forward and backward): bench's Linear4bit holds "
           f"{nf4.DEQUANT_BYTES} B per value of the largest one meanwhile (bitsandbytes' CUDA kernel writes the "
           "16-bit weight directly, ~2 B)"] if mem.dequant_transient else []),
        "peak = parts + transient: the loss's fp32 gradients as backward starts, or AdamW's two temporaries of "
        "the largest trainable tensor (foreach=False; CUDA's default foreach=True can add up to one more copy "
        "of the optimizer states); workspace and allocator slack are not counted",
    ]
    return mem
