"""QLoRA: LoRA on an NF4 base; parity with peft's LoRA over bitsandbytes' Linear4bit on identical weights."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from bench import BenchError
from bench.methods import apply, load_trained, make_config, merge, save_trained, trainable_parameters
from bench.methods.lora import lora_layers
from bench.methods.qlora import QLoraLayer
from bench.numerics.nf4 import Linear4bit, storage_bytes
from tests.methods.helpers import adamw_step, assert_rel_close, batch, make

logging.getLogger("bitsandbytes").setLevel(logging.ERROR)


def _bnb_base(model, double):
    """`model` with every Linear but lm_head replaced by bitsandbytes' Linear4bit (NF4, blocks of 64)."""
    bnb = pytest.importorskip("bitsandbytes")
    for name, mod in list(model.named_modules()):
        if isinstance(mod, nn.Linear) and name != "lm_head":
            q = bnb.nn.Linear4bit(mod.in_features, mod.out_features, bias=mod.bias is not None,
                                  compute_dtype=torch.float32, compress_statistics=double, quant_type="nf4")
            q.load_state_dict(mod.state_dict())
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, q.to("cpu"))
    return model


def _llama64():
    """A tiny Llama whose Linears all have >= 64 inputs: bitsandbytes 0.50.2's CPU dequantize kernel is wrong for
    rows shorter than a block (tests/numerics/test_nf4.py::test_rows_shorter_than_a_block)."""
    import copy

    import transformers as T
    torch.manual_seed(0)
    m = T.LlamaForCausalLM(T.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, vocab_size=100,
                                         max_position_embeddings=64, pad_token_id=0))
    return m, copy.deepcopy(m)


@pytest.mark.parametrize("double", [False, True])
def test_parity_with_peft_lora_on_bitsandbytes_4bit(peft, double):
    base, ref = _llama64()
    model = apply(base, make_config("qlora", r=4, alpha=8, target_modules=("q_proj", "v_proj"), double_quant=double))
    theirs = peft.get_peft_model(_bnb_base(ref, double), peft.LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    inner = theirs.base_model.model
    theirs_q = {n: m for n, m in inner.named_modules() if type(m).__name__ == "Linear4bit"}
    ours_q = {n.replace(".base", ""): m for n, m in model.named_modules() if isinstance(m, Linear4bit)}
    assert len(theirs_q) == len(ours_q) == 2 * 7                                 # every Linear but lm_head
    for n, m in ours_q.items():
        t = inner.get_submodule(n)
        t = getattr(t, "base_layer", t)
        assert torch.equal(m.codes, t.weight.data.reshape(-1))                  # same NF4 codes
        if double:   # bitsandbytes' CPU kernel picks a non-nearest 8-bit code for a few scales (test_nf4):
            m.absmax.copy_(t.weight.quant_state.absmax)   # use its scales to test the same forward/backward
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, m in lora_layers(model):
            m.lora_B.weight.copy_(torch.randn(m.lora_B.weight.shape, generator=g) * 0.1)
            inner.get_submodule(name).lora_A["default"].weight.copy_(m.lora_A.weight)
            inner.get_submodule(name).lora_B["default"].weight.copy_(m.lora_B.weight)
    assert trainable_parameters(model)[0] == theirs.get_nb_trainable_parameters()[0]
    ids, mask, labels = batch("llama")
    a = model(input_ids=ids, attention_mask=mask, labels=labels)
    b = theirs(input_ids=ids, attention_mask=mask, labels=labels)
    assert_rel_close(a.logits, b.logits)
    adamw_step(model, a.loss)
    adamw_step(theirs, b.loss)
    for name, m in lora_layers(model):
        assert_rel_close(m.lora_B.weight, inner.get_submodule(name).lora_B["default"].weight, rtol=1e-4)


def test_structure_storage_and_fp32_adapters():
    model = apply(make("gpt2").to(torch.bfloat16), make_config("qlora", r=2, compute_dtype="bfloat16"))
    quant = [m for m in model.modules() if isinstance(m, Linear4bit)]
    assert len(quant) == 2 * 4                                                   # c_attn, c_proj, c_fc, mlp c_proj
    assert not isinstance(model.lm_head, Linear4bit)                             # tied to wte, kept as is
    layers = lora_layers(model)
    assert all(isinstance(m, QLoraLayer) and m.lora_A.weight.dtype == torch.float32 for _, m in layers)
    assert sum(b.numel() * b.element_size() for q in quant for b in q.buffers()) == \
        sum(storage_bytes(q.in_features * q.out_features) for q in quant)
    ids, mask, _ = batch("gpt2")
    out = model(input_ids=ids, attention_mask=mask, labels=ids)
    out.loss.backward()
    assert all(m.lora_B.weight.grad is not None for _, m in layers)
    assert model.transformer.h[0].attn.c_attn.base.bias.grad is None


def test_close_to_the_float_model_and_round_trip(tmp_path):
    ids, mask, _ = batch("llama")
    want = make("llama", init=0.2)(input_ids=ids, attention_mask=mask).logits
    model = apply(make("llama", init=0.2), make_config("qlora", r=2))
    got = model(input_ids=ids, attention_mask=mask).logits
    rel = float((got - want).norm() / want.norm())
    assert 0 < rel < 0.5                     # NF4 error compounding over 2 layers at init 0.2; a broken model ~1.4
    with torch.no_grad():
        for _, m in lora_layers(model):
            m.lora_B.weight.add_(0.01)
    want = model(input_ids=ids, attention_mask=mask).logits
    save_trained(model, tmp_path / "q")
    again = load_trained(make("llama", init=0.2), tmp_path / "q")
    assert torch.equal(again(input_ids=ids, attention_mask=mask).logits, want)
    with pytest.raises(BenchError, match="quantized \\(4-bit\\) base"):
        merge(model)
    with pytest.raises(BenchError, match="blocksize must be a power of two"):
        make_config("qlora", blocksize=48)
    with pytest.raises(BenchError, match="compute_dtype"):
        make_config("qlora", compute_dtype="fp8")
