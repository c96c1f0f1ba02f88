"""The plugin contract (issue 32 item 1): a method registered in ONE place (here, a fixture) is found by
training, `bench memory`, the methods benchmark's plan and the peft parity harness, with no other edit."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from bench.methods import METHODS, apply, make_config, presets, registry, trainable_parameters
from bench.methods.lora import LoraConfig, LoraLayer, memory_branch, peft_config
from tests.methods.helpers import make
from tests.methods.parity import check_against_peft, parity_cases


@dataclass
class ToyConfig(LoraConfig):
    """LoRA under another name, with a layer class of its own (so its memory hook is its own)."""

    name = "toy"
    paper = "https://arxiv.org/abs/2106.09685"

    def make_layer(self, mod):
        return ToyLayer(mod, self.r, self.scaling(), self.dropout, self.init)


class ToyLayer(LoraLayer):
    pass


HOOK_CALLS = []


def toy_memory(layer):
    HOOK_CALLS.append(layer)
    return memory_branch(layer)


@pytest.fixture
def toy():
    spec = registry.register(registry.MethodSpec(ToyConfig, presets={"toy": {"r": 2, "alpha": 4.0}},
                                                 tiny={"toy": {"r": 2}}, layers={ToyLayer: toy_memory},
                                                 peft=peft_config))
    HOOK_CALLS.clear()
    yield spec
    registry.unregister("toy")


def test_every_list_of_methods_has_it(toy):
    assert "toy" in METHODS and presets.preset("toy") == ("toy", {"r": 2, "alpha": 4.0})
    from bench.fit import options, validate
    assert "toy" in options.method_choices() and validate.TINY_METHODS["toy"] == ("toy", {"r": 2})
    assert ("gpt2", "toy") in set(validate.tiny_cases())


def test_it_trains(toy):
    from bench.train import TrainConfig, train
    model = apply(make("gpt2"), presets.make_preset("toy"))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    data = [{"input_ids": [(s + i) % 50 for i in range(8)]} for s in range(16)]
    res = train(model, data, TrainConfig(lr=1e-2, steps=3, batch_size=4, warmup=0, progress=False, threads=1))
    assert res.steps_done == 3
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(".lora_" in n for n in changed)


def test_bench_memory_predicts_it_through_its_hook(toy):
    from bench.memory import Setup, estimate
    from transformers import GPT2Config
    from bench.fit.predict import predict
    pred = predict(GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=300), "toy", ["r=4"], seq=32)
    assert HOOK_CALLS and pred["method"].activations > 0
    same = [estimate(apply(make("gpt2"), make_config(m, r=2)), Setup(batch=2, seq_len=16)) for m in ("toy", "lora")]
    assert same[0].parts() == same[1].parts()          # LoRA's computation under another name: LoRA's bytes


def test_the_methods_benchmark_plans_it_beside_peft(toy):
    from reproductions.methods import PEFT_METHODS, METHODS as BENCH
    from reproductions.methods.models import variant
    from reproductions.methods.run import plan
    assert "toy" in BENCH and "toy" in PEFT_METHODS
    assert {"toy", "peft-toy"} <= set(plan(have_peft=True)) and "peft-toy" not in plan(have_peft=False)
    pytest.importorskip("peft")
    ours, theirs = variant("toy", make("gpt2")), variant("peft-toy", make("gpt2"))
    assert trainable_parameters(ours)[0] == theirs.get_nb_trainable_parameters()[0]


def test_the_parity_harness_checks_it(toy, peft, tmp_path):
    assert "toy" in parity_cases()
    check_against_peft(peft, "toy", tmp_path)


def test_unregistered_it_is_gone(toy):
    registry.unregister("toy")
    assert "toy" not in METHODS and "toy" not in presets.STANDARD and "toy" not in parity_cases()
    registry.register(toy)                               # the fixture removes it again
    with pytest.raises(Exception, match="already registered"):
        registry.register(toy)
