"""The common API of bench.methods: registry, make_config, apply's checks, counts, save/load, meta device."""

from __future__ import annotations

import json

import pytest
import torch

from bench import BenchError
from bench.methods import METHODS, apply, frozen_parameter_names, load_trained, make_config, registry, \
    save_trained, trainable_parameters
from tests.methods.helpers import batch, make

# per method: small settings for the 32-wide test models (the counts below assume them); a method without an
# entry runs with its first `bench memory --validate` case (SPEC.tiny), else its defaults
SIZES = {"full": {}, "lora": dict(r=2), "dora": dict(r=2), "pissa": dict(r=2), "qlora": dict(r=2),
         "adapters": dict(size=4), "prefix": dict(num_virtual_tokens=2), "prompt": dict(num_virtual_tokens=2),
         "ptuning": dict(num_virtual_tokens=2, hidden_size=8), "bitfit": {}, "top_k_layers": dict(k=1)}
SMALL = {n: SIZES.get(n, next(iter(registry.get(n).tiny.values()), {})) for n in METHODS}


def test_registry_and_configs():
    assert set(SIZES) <= set(METHODS) == set(SMALL)
    for name, cls in METHODS.items():
        cfg = make_config(name)
        assert cfg.name == name and cls.paper.startswith("https://")
        assert all(cls.help().values()), f"{name}: every field needs help text"
        json.dumps(cfg.to_dict())
    with pytest.raises(BenchError, match="unknown method 'vera'"):
        make_config("vera")
    with pytest.raises(BenchError, match="unknown option.*rank"):
        make_config("lora", rank=8)
    with pytest.raises(BenchError, match="rank r"):
        make_config("lora", r=0)
    for kw, words in ((dict(alpha="16"), "alpha must be"), (dict(r=8.0), "r must be int"),
                      (dict(target_modules=[1, 2]), "target_modules must be"), (dict(rslora="yes"), "rslora")):
        with pytest.raises(BenchError, match=words):
            make_config("lora", **kw)
    assert make_config("lora", alpha=16, target_modules=["q_proj"]).target_modules == ("q_proj",)


def test_apply_checks():
    model = make("gpt2")
    with pytest.raises(BenchError, match="method config"):
        apply(model, {"name": "lora"})
    model = apply(model, make_config("lora", r=2))
    with pytest.raises(BenchError, match="already has method 'lora'"):
        apply(model, make_config("prompt"))


def test_full_trains_everything():
    model = apply(make("gpt2"), make_config("full"))
    n, total = trainable_parameters(model)
    assert n == total == sum(p.numel() for p in make("gpt2").parameters()) and not frozen_parameter_names(model)


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("kind", ["gpt2", "bert"])
def test_save_load_round_trip_only_trained_part(name, kind, tmp_path):
    model = apply(make(kind), make_config(name, **SMALL[name]))
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():                                            # stand-in for training
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
    ids, mask, _ = batch(kind)
    want = model(input_ids=ids, attention_mask=mask).logits
    save_trained(model, tmp_path / name)
    again = load_trained(make(kind), tmp_path / name)
    assert torch.equal(again(input_ids=ids, attention_mask=mask).logits, want)
    assert trainable_parameters(again) == trainable_parameters(model)
    from safetensors.torch import load_file
    file = next(f for f in (tmp_path / name).iterdir() if f.suffix == ".safetensors")
    saved = sum(t.numel() for t in load_file(str(file)).values())
    assert saved == trainable_parameters(model)[0]                   # the trained part, nothing else


def test_load_checks(tmp_path):
    model = apply(make("gpt2"), make_config("prompt", num_virtual_tokens=2))
    save_trained(model, tmp_path / "p")
    with pytest.raises(BenchError, match="holds 'prompt'"):
        load_trained(apply(make("gpt2"), make_config("bitfit")), tmp_path / "p")
    with pytest.raises(BenchError, match="num_virtual_tokens=2, the model has num_virtual_tokens=3"):
        load_trained(apply(make("gpt2"), make_config("prompt", num_virtual_tokens=3)), tmp_path / "p")
    with pytest.raises(BenchError, match="not a folder"):
        load_trained(make("gpt2"), tmp_path / "missing")
    with pytest.raises(BenchError, match="no method applied"):
        save_trained(make("gpt2"), tmp_path / "x")


@pytest.mark.parametrize("name", sorted(SMALL))
def test_meta_device(name):
    """Counting parameters of huge configs must not allocate: every method applies on the meta device."""
    from transformers import AutoModelForCausalLM, GPT2Config
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(GPT2Config(n_embd=64, n_layer=3, n_head=4, vocab_size=500))
    model = apply(model, make_config(name, **SMALL[name]))
    assert all(p.device.type == "meta" for p in model.parameters())
    n, total = trainable_parameters(model)
    d, L = 64, 3
    width = L * 2 * d                                                 # prefix: keys and values of every layer
    expected = {"lora": L * 2 * (d + 3 * d), "pissa": L * 2 * (d + 3 * d), "qlora": L * 2 * (d + 3 * d),
                "dora": L * 2 * (d + 3 * d) + L * 3 * d, "prefix": 2 * d + (d * 512 + 512) + (512 * width + width), "prompt": 2 * d, "top_k_layers": 12 * d * d + 13 * d,
                "full": total, "adapters": L * 2 * (2 * 4 * d + d + 4) + (2 * L + 1) * 2 * d}
    if expected.get(name) is not None:
        assert n == expected[name]
    assert 0 < n <= total


# per method: a setting that changes what the model computes, saved value vs the adapted model's
DIFFERENT = {"lora": (dict(r=2, alpha=8.0), dict(r=2, alpha=4.0), "alpha=8.0, the model has alpha=4.0"),
             "dora": (dict(r=2, alpha=8.0), dict(r=2, alpha=4.0), "alpha=8.0, the model has alpha=4.0"),
             "qlora": (dict(r=2, double_quant=False), dict(r=2), "double_quant=False"),
             "adapters": (dict(size=4, activation="relu"), dict(size=4), "activation='relu'"),
             "prefix": (dict(num_virtual_tokens=2, reparam=False), dict(num_virtual_tokens=2, reparam=True),
                        "reparam=False"),
             "prompt": (dict(num_virtual_tokens=2, virtual_logits=True), dict(num_virtual_tokens=2),
                        "virtual_logits=True"),
             "ptuning": (dict(num_virtual_tokens=2, hidden_size=8, placeholder_token_id=5),
                         dict(num_virtual_tokens=2, hidden_size=8), "placeholder_token_id=5"),
             "top_k_layers": (dict(k=2), dict(k=1), "k=2, the model has k=1")}


@pytest.mark.parametrize("name", sorted(DIFFERENT))
def test_load_into_an_adapted_model_refuses_other_settings(name, tmp_path):
    """Issue 17 K2, every method: loading into an adapted model either computes what the saved model did or
    refuses with one line naming the setting (it used to check only the method name and the shapes)."""
    saved, loaded, words = DIFFERENT[name]
    model = apply(make("gpt2"), make_config(name, **saved))
    save_trained(model, tmp_path / name)
    with pytest.raises(BenchError, match=words) as e:
        load_trained(apply(make("gpt2"), make_config(name, **loaded)), tmp_path / name)
    assert "\n" not in str(e.value)
    ids = torch.full((2, 6), 7)
    ids[:, 2:4] = 5                                                      # ptuning's template: two placeholders
    want = model(input_ids=ids).logits
    assert torch.equal(load_trained(make("gpt2"), tmp_path / name)(input_ids=ids).logits, want)
    assert torch.equal(load_trained(apply(make("gpt2"), make_config(name, **saved)), tmp_path / name)(
        input_ids=ids).logits, want)


def test_init_only_settings_do_not_block_loading(tmp_path):
    model = apply(make("gpt2"), make_config("prompt", num_virtual_tokens=2, init="random", random_range=0.1))
    save_trained(model, tmp_path / "p")
    again = load_trained(apply(make("gpt2"), make_config("prompt", num_virtual_tokens=2, init="vocab")), tmp_path / "p")
    assert torch.equal(again.prompt, model.prompt)
    model = apply(make("gpt2"), make_config("adapters", size=4, zero_up=True))
    save_trained(model, tmp_path / "a")
    load_trained(apply(make("gpt2"), make_config("adapters", size=4, init_std=0.5)), tmp_path / "a")
