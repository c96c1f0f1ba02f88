"""BitFit and top-k layers: exactly the chosen existing parameters train."""

from __future__ import annotations

import pytest
import torch

from bench import BenchError
from bench.methods import apply, frozen_parameter_names, load_trained, make_config, save_trained, \
    trainable_parameters
from bench.methods.selective import TopKLayersConfig
from tests.methods.helpers import batch, make


@pytest.mark.parametrize("kind", ["gpt2", "bert"])
def test_bitfit_trains_biases_only(kind):
    model = apply(make(kind), make_config("bitfit", train_head=False))
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trained and all(n.endswith("bias") for n in trained)
    assert not any(n.endswith("bias") for n in frozen_parameter_names(model))
    ids, mask, labels = batch(kind)
    model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
    assert all((p.grad is not None) == p.requires_grad for p in model.parameters())


def test_bitfit_needs_biases():
    with pytest.raises(BenchError, match="no bias"):
        apply(make("llama"), make_config("bitfit"))


@pytest.mark.parametrize("kind,prefix", [("gpt2", "transformer.h.1."), ("llama", "model.layers.1."),
                                         ("bert", "bert.encoder.layer.1.")])
def test_top_k_layers(kind, prefix, tmp_path):
    model = apply(make(kind), make_config("top_k_layers", k=1))
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    head = ["classifier.weight", "classifier.bias"] if kind == "bert" else []
    assert sorted(trained) == sorted([n for n, _ in make(kind).named_parameters() if n.startswith(prefix)] + head)
    with torch.no_grad():
        for n in trained:
            model.get_parameter(n).add_(0.1)                     # "trained"
    save_trained(model, tmp_path / "k")
    again = load_trained(make(kind), tmp_path / "k")
    assert trainable_parameters(again) == trainable_parameters(model)
    ids, mask, _ = batch(kind)
    assert torch.equal(again(input_ids=ids, attention_mask=mask).logits, model(input_ids=ids, attention_mask=mask).logits)


@pytest.mark.parametrize("k,words", [(0, "positive"), (3, "exceeds")])
def test_top_k_bad_input(k, words):
    model = make("gpt2")
    with pytest.raises(BenchError, match=words):
        apply(model, TopKLayersConfig(k=k))
    assert all(p.requires_grad for p in model.parameters())
