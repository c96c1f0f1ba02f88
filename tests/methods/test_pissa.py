"""PiSSA: initialised A, B and residual weights equal peft's init_lora_weights="pissa"; step 0 = base model."""

from __future__ import annotations

import pytest
import torch

from bench import BenchError
from bench.methods import apply, load_trained, make_config, save_trained
from bench.methods.lora import lora_layers
from tests.methods.helpers import assert_rel_close, batch, make, pair

CASES = [("gpt2", ("c_attn",), ["c_attn"]), ("llama", ("q_proj", "v_proj"), ["q_proj", "v_proj"])]


@pytest.mark.parametrize("kind,ours_t,peft_t", CASES)
def test_init_equals_peft_and_keeps_the_base_output(peft, kind, ours_t, peft_t):
    base, ref = pair(kind, init=0.2)
    ids, mask, _ = batch(kind)
    want = base(input_ids=ids, attention_mask=mask).logits
    model = apply(base, make_config("pissa", r=4, alpha=8, target_modules=ours_t))
    theirs = peft.get_peft_model(ref, peft.LoraConfig(r=4, lora_alpha=8, target_modules=peft_t,
                                                      init_lora_weights="pissa", task_type="CAUSAL_LM"))
    inner = theirs.base_model.model
    for name, m in lora_layers(model):
        t = inner.get_submodule(name)
        assert torch.equal(m.lora_A.weight, t.lora_A["default"].weight)         # same recipe, same SVD
        assert torch.equal(m.lora_B.weight, t.lora_B["default"].weight)
        assert torch.equal(m.base.weight, t.base_layer.weight)                  # the residual
        w = m.base.weight.T if m.fan_in_fan_out else m.base.weight
        assert torch.linalg.matrix_rank(m.lora_B.weight @ m.lora_A.weight) == 4
        assert_rel_close(w + m.scaling * m.lora_B.weight @ m.lora_A.weight,
                         make(kind, init=0.2).get_submodule(name).weight.T if m.fan_in_fan_out else
                         make(kind, init=0.2).get_submodule(name).weight, rtol=1e-6)
    got = model(input_ids=ids, attention_mask=mask).logits
    assert_rel_close(got, want, rtol=1e-5)                                      # step 0: the base model
    assert_rel_close(got, theirs(input_ids=ids, attention_mask=mask).logits, rtol=1e-6)


def test_top_singular_values_go_to_the_adapter():
    model = apply(make("llama", init=0.2), make_config("pissa", r=2, alpha=2, target_modules=("q_proj",)))
    m = lora_layers(model)[0][1]
    s_full = torch.linalg.svdvals(make("llama", init=0.2).get_submodule(lora_layers(model)[0][0]).weight)
    s_res = torch.linalg.svdvals(m.base.weight)
    assert_rel_close(s_res[:30], s_full[2:32], rtol=1e-5)                      # residual: the rest of the spectrum
    assert s_res[-2:].abs().max() < 1e-5


def test_save_load_round_trip_and_tied_target(tmp_path):
    model = apply(make("gpt2"), make_config("pissa", r=2))
    with torch.no_grad():
        for _, m in lora_layers(model):
            m.lora_B.weight.add_(0.01)                                          # stand-in for training
    ids, mask, _ = batch("gpt2")
    want = model(input_ids=ids, attention_mask=mask).logits
    save_trained(model, tmp_path / "p")
    assert torch.equal(load_trained(make("gpt2"), tmp_path / "p")(input_ids=ids, attention_mask=mask).logits, want)
    with pytest.raises(BenchError, match="tied weights"):
        apply(make("gpt2"), make_config("pissa", r=2, target_modules=("lm_head",)))


def test_saved_in_peft_format_and_loaded_by_peft(peft, tmp_path):
    """init_lora_weights="pissa" recorded; A, B only (no residual): both sides re-derive it from the original base."""
    import json

    from safetensors.torch import load_file
    model = apply(make("gpt2", init=0.2), make_config("pissa", r=2, alpha=4))
    with torch.no_grad():
        for _, m in lora_layers(model):
            m.lora_B.weight.add_(0.01)
    save_trained(model, tmp_path / "p")
    c = json.loads((tmp_path / "p" / "adapter_config.json").read_text())
    assert c["init_lora_weights"] == "pissa" and c["use_dora"] is False
    assert all(k.endswith(("lora_A.weight", "lora_B.weight"))
               for k in load_file(str(tmp_path / "p" / "adapter_model.safetensors")))
    ids, mask, _ = batch("gpt2")
    theirs = peft.PeftModel.from_pretrained(make("gpt2", init=0.2), tmp_path / "p")
    want = model(input_ids=ids, attention_mask=mask).logits
    assert_rel_close(theirs(input_ids=ids, attention_mask=mask).logits, want)
    c["init_lora_weights"] = "pissa_niter_4"                # randomised SVD: another residual, refused
    (tmp_path / "p" / "adapter_config.json").write_text(json.dumps(c))
    with pytest.raises(BenchError, match="read by 0 of our methods"):
        load_trained(make("gpt2"), tmp_path / "p")
