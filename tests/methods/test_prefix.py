"""Prefix tuning: parity with peft (forward, counts, AdamW step, generate), KV-cache generation, fold()."""

from __future__ import annotations

import pytest
import torch

from bench import BenchError
from bench.methods.prefix import PrefixConfig
from bench.methods import apply, fold, load_trained, make_config, save_trained, trainable_parameters
from tests.methods.helpers import adamw_step, assert_rel_close, batch, greedy_without_cache, make, pair


def _peft_prefix(peft, ref, reparam, n=3, hidden=16):
    cfg = peft.PrefixTuningConfig(num_virtual_tokens=n, prefix_projection=reparam, encoder_hidden_size=hidden,
                                  task_type="CAUSAL_LM")
    return peft.get_peft_model(ref, cfg)


def _copy_to_peft(ours, theirs):
    enc = theirs.prompt_encoder["default"]
    with torch.no_grad():
        if ours.prefix is not None:
            enc.embedding.weight.copy_(ours.prefix)
        else:
            enc.embedding.weight.copy_(ours.embedding)
            for i in (0, 2):
                enc.transform[i].weight.copy_(ours.mlp[i].weight)
                enc.transform[i].bias.copy_(ours.mlp[i].bias)


@pytest.mark.parametrize("kind,reparam", [("gpt2", False), ("gpt2", True), ("llama", True)])
def test_parity_with_peft(peft, kind, reparam):
    base, ref = pair(kind)
    model = apply(base, make_config("prefix", num_virtual_tokens=3, reparam=reparam, reparam_hidden=16))
    theirs = _peft_prefix(peft, ref, reparam)
    _copy_to_peft(model, theirs)
    assert trainable_parameters(model) == theirs.get_nb_trainable_parameters()
    ids, mask, labels = batch(kind)
    a = model(input_ids=ids, attention_mask=mask, labels=labels)
    b = theirs(input_ids=ids, attention_mask=mask, labels=labels)
    assert a.logits.shape == ids.shape + (100,)                     # real positions only
    assert_rel_close(a.logits, b.logits)
    assert_rel_close(a.loss, b.loss)
    adamw_step(model, a.loss)
    adamw_step(theirs, b.loss)
    enc = theirs.prompt_encoder["default"]
    if reparam:
        assert_rel_close(model.embedding, enc.embedding.weight)
        assert_rel_close(model.mlp[2].weight, enc.transform[2].weight)
    else:
        assert_rel_close(model.prefix, enc.embedding.weight)


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_generate_uses_the_cache_and_matches_peft_forward(peft, kind):
    base, ref = pair(kind, init=0.3)
    model = apply(base, make_config("prefix", num_virtual_tokens=4, reparam=False)).eval()
    theirs = _peft_prefix(peft, ref, False, n=4).eval()
    _copy_to_peft(model, theirs)
    ids, _, _ = batch(kind, T=5)
    mask = torch.ones_like(ids)
    out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=0)
    assert torch.equal(out, greedy_without_cache(model, ids, mask, 6))
    # peft's own generate() disagrees with its forward under transformers 5.24 (its prefill injects the prefix
    # as `past_key_values` next to generate's `cache`), so the oracle here is greedy decoding on peft's forward.
    assert torch.equal(out, greedy_without_cache(theirs, ids, mask, 6))
    # the prefix changes what is generated (else the test above proves nothing)
    assert not torch.equal(out, make(kind, init=0.3).generate(input_ids=ids, attention_mask=mask, max_new_tokens=6,
                                                    do_sample=False, pad_token_id=0))


def test_fold_keeps_outputs_and_drops_the_mlp(tmp_path):
    model = apply(make("gpt2"), make_config("prefix", num_virtual_tokens=3, reparam=True, reparam_hidden=16))
    ids, mask, _ = batch("gpt2")
    want = model(input_ids=ids, attention_mask=mask).logits
    n_before, _ = trainable_parameters(model)
    fold(model)
    assert model.mlp is None and model.prefix.shape == (3, 2 * 2 * 32)
    assert trainable_parameters(model)[0] == 3 * 2 * 2 * 32 < n_before
    assert_rel_close(model(input_ids=ids, attention_mask=mask).logits, want)
    save_trained(model, tmp_path / "p")
    again = load_trained(make("gpt2"), tmp_path / "p")
    assert again.folded
    assert torch.equal(again(input_ids=ids, attention_mask=mask).logits, model(input_ids=ids, attention_mask=mask).logits)


def test_bert_classifier_trains_with_prefix():
    """peft 0.21 cannot prefix-tune BERT under transformers 5.x (it looks for `past_key_values`); ours can."""
    model = apply(make("bert"), make_config("prefix", num_virtual_tokens=3, reparam=False))
    ids, mask, labels = batch("bert")
    base_logits = make("bert")(input_ids=ids, attention_mask=mask).logits
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    assert out.logits.shape == (2, 3) and not torch.allclose(out.logits, base_logits)
    out.loss.backward()
    trained = {n for n, p in model.named_parameters() if p.grad is not None}
    assert trained == {"prefix", "base.classifier.weight", "base.classifier.bias"}
    assert trained == {n for n, p in model.named_parameters() if p.requires_grad}


def test_gqa_prefix_shape_and_bad_input():
    model = apply(make("llama"), make_config("prefix", num_virtual_tokens=5, reparam=False))
    assert model.prefix.shape == (5, 2 * 2 * 2 * 8)                 # n x (layers x k,v x kv_heads x head_dim)
    for bad in (0, -1):
        m = make("gpt2")
        with pytest.raises(BenchError, match="num_virtual_tokens"):
            apply(m, PrefixConfig(num_virtual_tokens=bad))
        assert all(p.requires_grad for p in m.parameters())
    ids, mask, _ = batch("llama")
    with pytest.raises(BenchError, match="cache"):
        model(input_ids=ids, attention_mask=mask, past_key_values=object())
