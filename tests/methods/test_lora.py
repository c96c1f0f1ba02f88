"""LoRA: exact invariants, and parity with peft (outputs, counts, one AdamW step, adapter files both ways)."""

from __future__ import annotations

import math

import pytest
import torch

from bench import BenchError
from bench.methods import apply, load_trained, make_config, merge, merge_and_unload, save_trained, \
    trainable_parameters, unmerge
from bench.methods.lora import LoraLayer, lora_layers
from tests.methods.helpers import adamw_step, assert_rel_close, batch, make, pair

# (model, our target_modules, peft target_modules, rslora)
CASES = [("gpt2", ("c_attn",), ["c_attn"], False),            # Conv1D (fan_in_fan_out)
         ("llama", ("q_proj", "v_proj"), ["q_proj", "v_proj"], True),   # Linear, rsLoRA
         ("opt", r".*\.(q_proj|v_proj)", r".*\.(q_proj|v_proj)", False),  # Linear, regex
         ("bert", None, ["query", "value"], False)]            # encoder + classification head


def _randomise_b(model, seed=5):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, m in lora_layers(model):
            m.lora_B.weight.copy_(torch.randn(m.lora_B.weight.shape, generator=g) * 0.1)


def _peft_lora(peft, ref, kind, targets, rslora, r=4, alpha=8):
    cfg = peft.LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, use_rslora=rslora,
                          task_type="SEQ_CLS" if kind == "bert" else "CAUSAL_LM")
    return peft.get_peft_model(ref, cfg)


def _copy_to_peft(ours, theirs):
    inner = theirs.base_model.model
    with torch.no_grad():
        for name, m in lora_layers(ours):
            t = inner.get_submodule(name)
            t.lora_A["default"].weight.copy_(m.lora_A.weight)
            t.lora_B["default"].weight.copy_(m.lora_B.weight)
            assert t.scaling["default"] == pytest.approx(m.scaling)
        for n, p in ours.named_parameters():
            if n.startswith("classifier."):
                theirs.base_model.model.classifier.modules_to_save["default"].get_parameter(n.split(".", 1)[1]).copy_(p)


@pytest.mark.parametrize("kind,ours_t,peft_t,rslora", CASES)
def test_parity_with_peft(peft, kind, ours_t, peft_t, rslora):
    base, ref = pair(kind)
    model = apply(base, make_config("lora", r=4, alpha=8, target_modules=ours_t, rslora=rslora))
    _randomise_b(model)
    theirs = _peft_lora(peft, ref, kind, peft_t, rslora)
    _copy_to_peft(model, theirs)
    assert {n for n, _ in lora_layers(model)} == {n for n, m in theirs.base_model.model.named_modules()
                                                    if hasattr(m, "lora_A") and "default" in m.lora_A}
    n_ours, total_ours = trainable_parameters(model)
    n_theirs, total_theirs = theirs.get_nb_trainable_parameters()
    assert n_ours == n_theirs
    if kind != "bert":  # peft keeps a frozen copy of the classifier besides the trained one
        assert total_ours == total_theirs
    ids, mask, labels = batch(kind)
    a = model(input_ids=ids, attention_mask=mask, labels=labels)
    b = theirs(input_ids=ids, attention_mask=mask, labels=labels)
    assert_rel_close(a.logits, b.logits)
    assert_rel_close(a.loss, b.loss)
    adamw_step(model, a.loss)
    adamw_step(theirs, b.loss)
    inner = theirs.base_model.model
    for name, m in lora_layers(model):
        assert_rel_close(m.lora_A.weight, inner.get_submodule(name).lora_A["default"].weight)
        assert_rel_close(m.lora_B.weight, inner.get_submodule(name).lora_B["default"].weight)


def test_scaling_alpha_over_r_and_rslora():
    m = apply(make("gpt2"), make_config("lora", r=4, alpha=8))
    assert all(l.scaling == 2.0 for _, l in lora_layers(m))
    m = apply(make("gpt2"), make_config("lora", r=4, alpha=8, rslora=True))
    assert all(l.scaling == 8 / math.sqrt(4) for _, l in lora_layers(m))


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_b_zero_equals_base_bit_for_bit(kind):
    base, ref = pair(kind)
    ids, mask, _ = batch(kind)
    want = ref(input_ids=ids, attention_mask=mask).logits
    for init in ("kaiming", "gaussian"):
        base, _ = pair(kind)
        model = apply(base, make_config("lora", r=4, alpha=16, init=init, target_modules=(
            "c_attn", "c_proj") if kind == "gpt2" else ("q_proj", "v_proj", "down_proj")))
        assert torch.equal(model(input_ids=ids, attention_mask=mask).logits, want)


def test_gaussian_init_std_one_over_r():
    torch.manual_seed(0)
    m = apply(make("llama"), make_config("lora", r=2, init="gaussian", target_modules=("gate_proj", "up_proj")))
    a = torch.cat([l.lora_A.weight.flatten() for _, l in lora_layers(m)])
    assert a.std().item() == pytest.approx(0.5, rel=0.15)
    assert all(torch.count_nonzero(l.lora_B.weight) == 0 for _, l in lora_layers(m))


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_merge_unmerge_and_unload(kind):
    base, ref = pair(kind)
    model = apply(base, make_config("lora", r=4, alpha=8))
    _randomise_b(model)
    ids, mask, _ = batch(kind)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    unmerged = model(input_ids=ids, attention_mask=mask).logits
    merge(model)
    assert all(l.merged for _, l in lora_layers(model))
    merged = model(input_ids=ids, attention_mask=mask).logits
    assert_rel_close(merged, unmerged)
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert changed and all(n.endswith("base.weight") for n in changed)
    unmerge(model)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p, before[n], rtol=0, atol=1e-6)
    plain = merge_and_unload(model)
    assert not lora_layers(plain)
    assert {n for n, _ in plain.named_parameters()} == {n for n, _ in ref.named_parameters()}
    assert_rel_close(plain(input_ids=ids, attention_mask=mask).logits, unmerged)


def test_gradients_reach_only_trainable_params():
    model = apply(make("gpt2"), make_config("lora", r=4))
    _randomise_b(model)
    ids, mask, labels = batch("gpt2")
    model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
    for n, p in model.named_parameters():
        assert (p.grad is not None) == p.requires_grad, n
        assert p.requires_grad == (".lora_A." in n or ".lora_B." in n), n
    assert all(torch.count_nonzero(p.grad) > 0 for p in model.parameters() if p.requires_grad)


def test_target_matching_rule():
    m = apply(make("llama"), make_config("lora", r=2, target_modules=("q_proj", "model.layers.1.self_attn.v_proj")))
    assert [n for n, _ in lora_layers(m)] == ["model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.q_proj",
                                              "model.layers.1.self_attn.v_proj"]
    m = apply(make("llama"), make_config("lora", r=2, target_modules=r"model\.layers\.0\..*_proj"))
    assert len(lora_layers(m)) == 7 and all(n.startswith("model.layers.0.") for n, _ in lora_layers(m))
    # a regex must match the whole name, not a part of it
    with pytest.raises(BenchError, match="matches no"):
        apply(make("llama"), make_config("lora", r=2, target_modules=r"q_proj"))


@pytest.mark.parametrize("kwargs,words", [
    (dict(r=0), "rank r"), (dict(r=-2), "rank r"), (dict(r=33, target_modules=("c_attn",)), "exceeds min"),
    (dict(alpha=0.0), "alpha"), (dict(alpha=-1.0), "alpha"),
    (dict(target_modules=("c_atn",)), "'c_atn' matches no"), (dict(target_modules=r"nothing\..*"), "matches no"),
    (dict(target_modules="(("), "not a valid regex"), (dict(init="xavier"), "init"), (dict(dropout=1.0), "dropout")])
def test_bad_input_leaves_model_untouched(kwargs, words):
    from bench.methods.lora import LoraConfig
    model = make("gpt2")
    before = {n: (p.detach().clone(), p.requires_grad) for n, p in model.named_parameters()}
    with pytest.raises(BenchError, match=words):
        apply(model, LoraConfig(**kwargs))
    assert {n: (p, p.requires_grad) for n, p in model.named_parameters()}.keys() == before.keys()
    assert all(torch.equal(p, before[n][0]) and p.requires_grad == before[n][1] for n, p in model.named_parameters())
    assert not any(isinstance(m, LoraLayer) for m in model.modules())


def test_meta_device_counts():
    from transformers import AutoModelForCausalLM, LlamaConfig
    cfg = LlamaConfig(hidden_size=256, intermediate_size=512, num_hidden_layers=3, num_attention_heads=4,
                      vocab_size=1000)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    model = apply(model, make_config("lora", r=8, target_modules=("q_proj", "v_proj")))
    n, total = trainable_parameters(model)
    assert n == 3 * 2 * 8 * (256 + 256)                       # 2 targets x r(in + out) per layer
    assert all(p.device.type == "meta" for p in model.parameters())


@pytest.mark.parametrize("kind,peft_t", [("gpt2", ["c_attn"]), ("bert", ["query", "value"])])
def test_adapter_files_round_trip_with_peft(peft, tmp_path, kind, peft_t):
    ids, mask, _ = batch(kind)
    # ours -> disk -> ours and -> peft
    base, ref = pair(kind)
    model = apply(base, make_config("lora", r=4, alpha=8))
    _randomise_b(model)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.startswith("classifier."):
                p.add_(0.5)
    want = model(input_ids=ids, attention_mask=mask).logits
    save_trained(model, tmp_path / "ours")
    assert sorted(p.name for p in (tmp_path / "ours").iterdir()) == ["adapter_config.json",
                                                                     "adapter_model.safetensors"]
    again = load_trained(pair(kind)[0], tmp_path / "ours")
    assert torch.equal(again(input_ids=ids, attention_mask=mask).logits, want)
    theirs = peft.PeftModel.from_pretrained(ref, tmp_path / "ours")
    assert_rel_close(theirs(input_ids=ids, attention_mask=mask).logits, want)
    # peft -> disk -> ours
    base, ref = pair(kind, seed=3)
    theirs = _peft_lora(peft, ref, kind, peft_t, rslora=True)
    with torch.no_grad():
        for n, p in theirs.named_parameters():
            if "lora_B" in n or "modules_to_save" in n:
                p.normal_(0, 0.1)
    theirs.save_pretrained(tmp_path / "peft")
    want = theirs(input_ids=ids, attention_mask=mask).logits
    ours = load_trained(base, tmp_path / "peft")
    assert all(l.scaling == 8 / 2 for _, l in lora_layers(ours))  # rsLoRA read from the config
    assert_rel_close(ours(input_ids=ids, attention_mask=mask).logits, want)


def _tied_head_model():
    model = apply(make("gpt2"), make_config("lora", r=4, alpha=8, target_modules=("c_attn", "lm_head")))
    _randomise_b(model)
    return model


def test_merge_refuses_a_tied_target_before_writing(peft):
    """Issue 17 K1: GPT-2's lm_head IS transformer.wte; merging its update would move the embedding too
    (before the fix: wte moved by 0.154, merged logits off by a relative 1.82)."""
    model = _tied_head_model()
    assert model.lm_head.weight is model.transformer.wte.weight
    ids, mask, _ = batch("gpt2")
    want = model(input_ids=ids, attention_mask=mask).logits
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for fn in (merge, merge_and_unload):
        with pytest.raises(BenchError, match=r"lm_head\.base\.weight is shared with transformer\.wte\.weight"):
            fn(model)
        assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
        assert not any(m.merged for _, m in lora_layers(model))
    assert torch.equal(model(input_ids=ids, attention_mask=mask).logits, want)
    # unmerged, the tied head is right: it equals peft's on the same weights
    theirs = _peft_lora(peft, make("gpt2"), "gpt2", ["c_attn", "lm_head"], False)
    _copy_to_peft(model, theirs)
    assert_rel_close(theirs(input_ids=ids, attention_mask=mask).logits, want)
    # an untied model merges as before
    plain = apply(make("gpt2"), make_config("lora", r=4, alpha=8, target_modules=("c_attn",)))
    _randomise_b(plain)
    got = plain(input_ids=ids, attention_mask=mask).logits
    assert_rel_close(merge(plain)(input_ids=ids, attention_mask=mask).logits, got)


def test_load_refuses_merged_layers_and_tied_head_tensors(tmp_path):
    from safetensors.torch import load_file, save_file
    model = apply(make("gpt2"), make_config("lora", r=4, alpha=8))
    _randomise_b(model)
    save_trained(model, tmp_path / "a")
    target = merge(apply(make("gpt2"), make_config("lora", r=4, alpha=8)))
    with pytest.raises(BenchError, match="merged LoRA layers.*unmerge first"):
        load_trained(target, tmp_path / "a")
    # a peft file carrying lm_head as a module of its own (modules_to_save): in GPT-2 it is wte's tensor
    file = tmp_path / "a" / "adapter_model.safetensors"
    sd = load_file(str(file))
    sd["base_model.model.lm_head.modules_to_save.default.weight"] = torch.zeros(100, 32)
    save_file(sd, str(file))
    fresh = make("gpt2")
    wte = fresh.transformer.wte.weight.detach().clone()
    with pytest.raises(BenchError, match="lm_head.weight is shared with transformer.wte.weight"):
        load_trained(fresh, tmp_path / "a")
    assert torch.equal(fresh.transformer.wte.weight, wte)


@pytest.mark.parametrize("saved,loaded,words", [
    (dict(rslora=True), dict(rslora=False), "rslora=True, the model has rslora=False"),
    (dict(rslora=False), dict(rslora=True), "rslora=False, the model has rslora=True"),
    (dict(alpha=32), dict(alpha=16), "alpha=32.0, the model has alpha=16"),
    (dict(dropout=0.1), dict(dropout=0.0), "dropout=0.1")])
def test_load_into_an_adapted_model_checks_every_setting(tmp_path, saved, loaded, words):
    """Issue 17 K2: an rsLoRA adapter (r=16, alpha=16: scaling 4) loaded into a model adapted with rslora=False
    kept scaling 1 (logits off by 0.70). Now: refused, naming the setting; into a plain model: exact."""
    model = apply(make("gpt2"), make_config("lora", **(dict(r=16, alpha=16, target_modules=("c_attn",)) | saved)))
    _randomise_b(model)
    ids, mask, _ = batch("gpt2")
    want = model.eval()(input_ids=ids, attention_mask=mask).logits
    save_trained(model, tmp_path / "a")
    other = apply(make("gpt2"), make_config("lora", **(dict(r=16, alpha=16, target_modules=("c_attn",)) | loaded)))
    with pytest.raises(BenchError, match=words):
        load_trained(other, tmp_path / "a")
    assert all(torch.count_nonzero(m.lora_B.weight) == 0 for _, m in lora_layers(other))   # nothing loaded
    same = apply(make("gpt2"), make_config("lora", **(dict(r=16, alpha=16, target_modules=("c_attn",), init="gaussian")
                                                      | saved)))   # init only sets starting values: ignored
    for target in (same, make("gpt2")):
        got = load_trained(target, tmp_path / "a").eval()(input_ids=ids, attention_mask=mask).logits
        assert torch.equal(got, want)
