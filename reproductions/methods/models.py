"""The benchmarked models: a GPT-2 config with random weights, and one variant of it per method.

Variants for the round-robin share the base's weight storage (`sharing_copy`), so a GPT-2-small benchmark holds
one copy of the weights however many methods it times; measured-memory variants own their weights.
"""

from __future__ import annotations

import copy

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from bench.methods import apply, make_config
from reproductions.methods.settings import PEFT, ModelSpec, method_kwargs


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


def variant(name: str, base, share: bool = True):
    """`base` with method `name` applied: a bench.methods name, or "peft-<name>" for peft's counterpart of it
    (SPEC.peft, bench.methods.registry.peft_model; peft is imported only then). share: weights shared, except
    for a method that rewrites the frozen base at apply() (SPEC.rewrites_base, PiSSA's residual), which gets
    its own copy so the other variants keep the base."""
    from bench.methods import registry

    method = name.removeprefix(PEFT)
    share = share and not registry.get(method).rewrites_base
    model = sharing_copy(base) if share else copy.deepcopy(base)
    config_name, kw = preset_of(method)
    cfg = make_config(config_name, **kw)
    if name.startswith(PEFT):
        return registry.peft_model(cfg, model)
    return apply(model, cfg)


def preset_of(method: str) -> tuple[str, dict]:
    """(config name, kwargs) of `method` in this benchmark."""
    from bench.methods.presets import preset
    return preset(method)[0], method_kwargs(method)


def optimizer(model) -> torch.optim.AdamW:
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)


def step(model, opt, ids) -> None:
    """One training step: forward with the LM loss on ids (B, T), backward, AdamW, zero_grad."""
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
