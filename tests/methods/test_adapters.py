"""Houlsby adapters: placement (after attention and FFN), parameter count 2md + d + m, near-identity init."""

from __future__ import annotations

import pytest
import torch

from bench import BenchError
from bench.methods import apply, load_trained, make_config, save_trained, trainable_parameters
from bench.methods.adapters import AdapterConfig, WithAdapter
from tests.methods.helpers import batch, make


@pytest.mark.parametrize("kind,places", [
    ("gpt2", ["transformer.h.{i}.attn.c_proj", "transformer.h.{i}.mlp.c_proj"]),
    ("llama", ["model.layers.{i}.self_attn.o_proj", "model.layers.{i}.mlp.down_proj"]),
    ("bert", ["bert.encoder.layer.{i}.attention.output.dense", "bert.encoder.layer.{i}.output.dense"])])
def test_placement_count_and_identity_init(kind, places):
    ids, mask, labels = batch(kind)
    want = make(kind)(input_ids=ids, attention_mask=mask).logits
    model = apply(make(kind), make_config("adapters", size=4, zero_up=True))
    got = sorted(n for n, m in model.named_modules() if isinstance(m, WithAdapter))
    assert got == sorted(p.format(i=i) for p in places for i in range(2))
    assert torch.equal(model(input_ids=ids, attention_mask=mask).logits, want)      # up = 0: exact identity
    d, m = 32, 4
    adapters = 2 * 2 * (2 * m * d + d + m)                                             # 2 blocks x 2 adapters
    norms = sum(p.numel() for n, p in make(kind).named_parameters() if "norm" in n.lower() or ".ln_" in n)
    head = 3 * 32 + 3 if kind == "bert" else 0
    assert trainable_parameters(model)[0] == adapters + norms + head
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)


def test_houlsby_init_is_near_identity_not_exact(tmp_path):
    ids, mask, _ = batch("gpt2")
    want = make("gpt2")(input_ids=ids, attention_mask=mask).logits
    model = apply(make("gpt2"), make_config("adapters", size=8, train_layernorm=False))
    got = model(input_ids=ids, attention_mask=mask).logits
    assert not torch.equal(got, want) and torch.allclose(got, want, atol=1e-3)
    assert trainable_parameters(model)[0] == 2 * 2 * (2 * 8 * 32 + 32 + 8)
    save_trained(model, tmp_path / "a")
    again = load_trained(make("gpt2"), tmp_path / "a")
    assert torch.equal(again(input_ids=ids, attention_mask=mask).logits, got)


@pytest.mark.parametrize("kwargs,words", [(dict(size=0), "size"), (dict(activation="swish"), "activation"),
                                          (dict(targets=(r"attn\.nothing",)), "matched 0")])
def test_bad_input(kwargs, words):
    model = make("gpt2")
    with pytest.raises(BenchError, match=words):
        apply(model, AdapterConfig(**kwargs))
    assert all(p.requires_grad for p in model.parameters())
    assert not any(isinstance(m, WithAdapter) for m in model.modules())
