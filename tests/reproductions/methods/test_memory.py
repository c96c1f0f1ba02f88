"""reproductions/methods/memory.py: the tensor accounting of one step (bench.probes.SavedTensors)."""

from __future__ import annotations

import torch

from bench.methods import apply, make_config, trainable_parameters
from reproductions.methods.memory import tensor_accounting
from reproductions.methods.models import optimizer, step
from tests.methods.helpers import make


def test_tensor_accounting():
    ids = torch.randint(1, 100, (2, 8))
    acct = {}
    for name, kw in (("full", {}), ("lora", dict(r=2))):
        model = apply(make("gpt2"), make_config(name, **kw))
        opt = optimizer(model)
        step(model, opt, ids)
        acct[name] = (tensor_accounting(model, opt, ids), trainable_parameters(model))
    (full, (_, total_full)), (lora, (n_lora, total_lora)) = acct["full"], acct["lora"]
    assert full["weights"] == full["grads"] == 4 * total_full and full["states"] == 2 * full["grads"]
    assert lora["weights"] == 4 * total_lora and lora["grads"] == 4 * n_lora and lora["states"] == 8 * n_lora
    assert 0 < lora["activations"] and full["activations"] > 0
    assert full["total"] == sum(v for k, v in full.items() if k != "total")
