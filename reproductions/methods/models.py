"""The benchmarked models: a GPT-2 config with random weights, and one variant of it per method.

Variants for the round-robin share the base's weight storage (`sharing_copy`), so a GPT-2-small benchmark holds
one copy of the weights however many methods it times; measured-memory variants own their weights.
"""

from __future__ import annotations

import copy

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from bench.methods import apply, make_config
from reproductions.methods.settings import ModelSpec, method_kwargs


def build(spec: ModelSpec, seq: int, seed: int) -> GPT2LMHeadModel:
    """A GPT-2 LM of `spec`'s shape, weights drawn from `seed`, positions for at least seq + 64 tokens."""
    torch.manual_seed(seed)
    cfg = GPT2Config(n_embd=spec.n_embd, n_layer=spec.n_layer, n_head=spec.n_head, vocab_size=spec.vocab,
                     n_positions=max(1024, seq + 64), bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(cfg)


def sharing_copy(base):
    """A copy of `base` whose parameters are new Parameter objects over the SAME storage: one weight copy in
    memory for all variants of the round-robin (each keeps its own requires_grad flags). The weights drift a
    little as full FT / BitFit / top-k steps update them; timings do not depend on the values."""
    memo = {id(p): torch.nn.Parameter(p.data, requires_grad=True) for p in base.parameters()}
    return copy.deepcopy(base, memo)


def peft_lora(model):
    """peft's LoRA with this benchmark's settings (no dropout on the branch; GPT-2's Conv1D is fan_in_fan_out)."""
    import peft   # the peer, optional and imported only here (bench/ never imports peft)

    kw = method_kwargs("lora")
    cfg = peft.LoraConfig(r=kw["r"], lora_alpha=kw["alpha"], target_modules=list(kw["target_modules"]),
                          lora_dropout=0.0, fan_in_fan_out=True, task_type="CAUSAL_LM")
    return peft.get_peft_model(model, cfg)


def variant(name: str, base, share: bool = True):
    """`base` with method `name` applied (a bench.methods name, or "peft-lora"); share: weights shared."""
    model = sharing_copy(base) if share else copy.deepcopy(base)
    if name == "peft-lora":
        return peft_lora(model)
    return apply(model, make_config(name, **method_kwargs(name)))


def optimizer(model) -> torch.optim.AdamW:
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)


def step(model, opt, ids) -> None:
    """One training step: forward with the LM loss on ids (B, T), backward, AdamW, zero_grad."""
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
