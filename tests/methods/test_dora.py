"""DoRA: parity with peft's use_dora=True (outputs, gradients, one AdamW step), merge exactness, refusals."""

from __future__ import annotations

import pytest
import torch

from bench import BenchError
from bench.methods import apply, load_trained, make_config, merge, merge_and_unload, multi_lora, save_trained, \
    trainable_parameters, unmerge
from bench.methods.dora import DoraLayer
from bench.methods.lora import lora_layers
from tests.methods.helpers import adamw_step, assert_rel_close, batch, make, pair

CASES = [("gpt2", ("c_attn",), ["c_attn"]),                                  # Conv1D (fan_in_fan_out), bias
         ("llama", ("q_proj", "v_proj"), ["q_proj", "v_proj"])]              # Linear, no bias, GQA


def _randomise(model, seed=5):
    """Move B and m off their init so the magnitude, the norm and B all matter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, m in lora_layers(model):
            m.lora_B.weight.copy_(torch.randn(m.lora_B.weight.shape, generator=g) * 0.1)
            m.lora_magnitude_vector.mul_(1 + 0.2 * torch.rand(m.lora_magnitude_vector.shape, generator=g))


def _peft_dora(peft, ref, targets, r=4, alpha=8, dropout=0.0):
    cfg = peft.LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, use_dora=True, lora_dropout=dropout,
                          task_type="CAUSAL_LM")
    return peft.get_peft_model(ref, cfg)


def _copy(ours, theirs):
    inner = theirs.base_model.model
    with torch.no_grad():
        for name, m in lora_layers(ours):
            t = inner.get_submodule(name)
            t.lora_A["default"].weight.copy_(m.lora_A.weight)
            t.lora_B["default"].weight.copy_(m.lora_B.weight)
            t.lora_magnitude_vector["default"].weight.copy_(m.lora_magnitude_vector)


@pytest.mark.parametrize("kind,ours_t,peft_t", CASES)
def test_parity_with_peft_outputs_and_gradients(peft, kind, ours_t, peft_t):
    base, ref = pair(kind)
    model = apply(base, make_config("dora", r=4, alpha=8, target_modules=ours_t))
    theirs = _peft_dora(peft, ref, peft_t)
    inner = theirs.base_model.model
    for name, m in lora_layers(model):   # the magnitude starts at the row norms of W, in both
        assert_rel_close(m.lora_magnitude_vector, inner.get_submodule(name).lora_magnitude_vector["default"].weight)
    _randomise(model)
    _copy(model, theirs)
    assert trainable_parameters(model) == theirs.get_nb_trainable_parameters()
    ids, mask, labels = batch(kind)
    a = model(input_ids=ids, attention_mask=mask, labels=labels)
    b = theirs(input_ids=ids, attention_mask=mask, labels=labels)
    assert_rel_close(a.logits, b.logits)
    a.loss.backward()
    b.loss.backward()
    for name, m in lora_layers(model):
        t = inner.get_submodule(name)
        for mine, their in ((m.lora_A.weight, t.lora_A["default"].weight), (m.lora_B.weight, t.lora_B["default"].weight),
                            (m.lora_magnitude_vector, t.lora_magnitude_vector["default"].weight)):
            assert_rel_close(mine.grad, their.grad, rtol=1e-4)
    model.zero_grad()
    theirs.zero_grad()
    adamw_step(model, model(input_ids=ids, attention_mask=mask, labels=labels).loss)
    adamw_step(theirs, theirs(input_ids=ids, attention_mask=mask, labels=labels).loss)
    for name, m in lora_layers(model):
        assert_rel_close(m.lora_magnitude_vector, inner.get_submodule(name).lora_magnitude_vector["default"].weight)


def test_dropout_in_training_matches_peft(peft):
    base, ref = pair("llama")
    model = apply(base, make_config("dora", r=4, alpha=8, dropout=0.3, target_modules=("q_proj",)))
    theirs = _peft_dora(peft, ref, ["q_proj"], dropout=0.3)
    _randomise(model)
    _copy(model, theirs)
    ids, mask, labels = batch("llama")
    model.train()
    theirs.train()
    torch.manual_seed(3)
    a = model(input_ids=ids, attention_mask=mask).logits
    torch.manual_seed(3)
    b = theirs(input_ids=ids, attention_mask=mask).logits
    assert_rel_close(a, b)


def test_starts_as_the_base_model_and_trains_m_a_b():
    base = make("gpt2")
    ids, mask, _ = batch("gpt2")
    want = base(input_ids=ids, attention_mask=mask).logits
    model = apply(make("gpt2"), make_config("dora", r=2))
    assert_rel_close(model(input_ids=ids, attention_mask=mask).logits, want, rtol=1e-6)
    names = {n.rsplit(".", 1)[-1] for n, p in model.named_parameters() if p.requires_grad}
    assert names == {"weight", "lora_magnitude_vector"}
    d = 32
    assert trainable_parameters(model)[0] == 2 * (2 * (d + 3 * d) + 3 * d)      # A, B and m of 2 layers


@pytest.mark.parametrize("kind,targets", [("gpt2", ("c_attn", "c_fc")), ("llama", ("q_proj", "v_proj"))])
def test_merge_is_exact_and_unmerge_restores(kind, targets):
    model = apply(make(kind), make_config("dora", r=4, alpha=8, target_modules=targets))
    _randomise(model)
    before = {n: m.base.weight.detach().clone() for n, m in lora_layers(model)}
    ids, mask, _ = batch(kind)
    want = model(input_ids=ids, attention_mask=mask).logits
    merge(model)
    assert all(isinstance(m, DoraLayer) and m.merged for _, m in lora_layers(model))
    assert_rel_close(model(input_ids=ids, attention_mask=mask).logits, want, rtol=1e-5)
    unmerge(model)
    for n, m in lora_layers(model):
        assert_rel_close(m.base.weight, before[n], rtol=1e-6)
    assert_rel_close(model(input_ids=ids, attention_mask=mask).logits, want, rtol=1e-6)
    plain = merge_and_unload(model)
    assert not lora_layers(plain)
    assert_rel_close(plain(input_ids=ids, attention_mask=mask).logits, want, rtol=1e-5)


def test_merged_weight_is_the_papers_formula():
    model = apply(make("llama"), make_config("dora", r=2, alpha=4, target_modules=("q_proj",)))
    _randomise(model)
    m = lora_layers(model)[0][1]
    w = m.base.weight.detach().clone()
    v = w + m.scaling * m.lora_B.weight @ m.lora_A.weight
    want = m.lora_magnitude_vector.detach().view(-1, 1) * v / v.norm(dim=1, keepdim=True)   # m * V / ||V||_row
    m.merge()
    assert_rel_close(m.base.weight, want, rtol=1e-6)


def test_save_load_and_refusals(tmp_path):
    model = apply(make("gpt2"), make_config("dora", r=2))
    _randomise(model)
    ids, mask, _ = batch("gpt2")
    want = model(input_ids=ids, attention_mask=mask).logits
    save_trained(model, tmp_path / "d")
    assert torch.equal(load_trained(make("gpt2"), tmp_path / "d")(input_ids=ids, attention_mask=mask).logits, want)
    with pytest.raises(BenchError, match="holds 'dora'"):
        load_trained(apply(make("gpt2"), make_config("lora", r=2)), tmp_path / "d")
    with pytest.raises(BenchError, match="multi_lora: adapter 'a' is dora"):
        multi_lora(make("gpt2"), {"a": model})
    # one DoRA adapter per module: a second method on the same model is refused (no stacked adapters)
    with pytest.raises(BenchError, match="already has method 'dora'"):
        apply(model, make_config("dora", r=2))


def test_saved_in_peft_format_both_ways(peft, tmp_path):
    """adapter_config.json says use_dora; m is saved under peft's key; peft's own DoRA folder loads into ours."""
    import json

    from safetensors.torch import load_file
    model = apply(make("gpt2"), make_config("dora", r=2))
    _randomise(model)
    save_trained(model, tmp_path / "d")
    c = json.loads((tmp_path / "d" / "adapter_config.json").read_text())
    assert c["peft_type"] == "LORA" and c["use_dora"] is True and c["init_lora_weights"] is True
    keys = set(load_file(str(tmp_path / "d" / "adapter_model.safetensors")))
    assert "base_model.model.transformer.h.0.attn.c_attn.lora_magnitude_vector" in keys
    theirs = _peft_dora(peft, make("gpt2"), ["c_attn"], r=2, alpha=8)
    _copy(model, theirs)
    theirs.save_pretrained(tmp_path / "p")
    ids, mask, _ = batch("gpt2")
    got = load_trained(make("gpt2"), tmp_path / "p")
    assert got.bench_method.name == "dora"
    assert_rel_close(got(input_ids=ids, attention_mask=mask).logits, model(input_ids=ids, attention_mask=mask).logits)
