"""Prompt tuning: parity with peft (causal LM and BERT classifier), inits, masks/labels, generate, bad input."""

from __future__ import annotations

import pytest
import torch

from bench import BenchError
from bench.methods import apply, load_trained, make_config, save_trained, trainable_parameters
from bench.methods.prompt import PromptConfig
from tests.methods.helpers import N, batch, check_parity, greedy_without_cache, make, pair, peft_prompt_model


def _copy_prompt(model, theirs):
    with torch.no_grad():
        theirs.prompt_encoder["default"].embedding.weight.copy_(model.prompt)


@pytest.mark.parametrize("kind", ["gpt2", "llama", "bert"])
def test_parity_with_peft(peft, kind):
    base, ref = pair(kind)
    model = apply(base, make_config("prompt", num_virtual_tokens=N, init="random"))
    check_parity(model, peft_prompt_model(peft, ref, kind, peft.PromptTuningConfig), kind, _copy_prompt)


def test_generate_matches_peft_forward(peft):
    base, ref = pair("gpt2", init=0.3)
    model = apply(base, make_config("prompt", num_virtual_tokens=N, init="vocab")).eval()
    theirs = peft_prompt_model(peft, ref, "gpt2", peft.PromptTuningConfig).eval()
    _copy_prompt(model, theirs)
    ids, mask, _ = batch("gpt2", T=5)
    mask = torch.ones_like(mask)
    kw = dict(attention_mask=mask, max_new_tokens=5, do_sample=False, pad_token_id=0)
    out = model.generate(input_ids=ids, **kw)
    assert out.shape == (2, 10) and torch.equal(out[:, :5], ids)
    assert torch.equal(out, greedy_without_cache(model, ids, mask, 5))
    # peft's generate() is not consistent with its forward under transformers 5.24; its forward is the oracle
    assert torch.equal(out, greedy_without_cache(theirs, ids, mask, 5))
    assert not torch.equal(out, make("gpt2", init=0.3).generate(input_ids=ids, **kw))


def test_mask_labels_and_inits():
    emb = make("gpt2").get_input_embeddings().weight
    m = apply(make("gpt2"), make_config("prompt", num_virtual_tokens=5, init="text", init_token_ids=(7, 9)))
    assert torch.equal(m.prompt, emb[[7, 9, 7, 9, 7]])
    m = apply(make("gpt2"), make_config("prompt", num_virtual_tokens=4, init="labels", init_token_ids=(11, 12)))
    assert torch.equal(m.prompt[:2], emb[[11, 12]])
    m = apply(make("gpt2"), make_config("prompt", num_virtual_tokens=50, init="vocab"))
    assert all(any(torch.equal(row, e) for e in emb) for row in m.prompt[:5])
    m = apply(make("gpt2"), make_config("prompt", num_virtual_tokens=50, init="random", random_range=0.25))
    assert m.prompt.abs().max() <= 0.25 and m.prompt.std() > 0.1
    ids, mask, labels = batch("gpt2")
    got = m.build_inputs(input_ids=ids, attention_mask=mask, labels=labels)
    assert torch.equal(got["attention_mask"][:, :50], torch.ones(2, 50, dtype=torch.long))
    assert torch.equal(got["attention_mask"][:, 50:], mask)
    assert (got["labels"][:, :50] == -100).all() and torch.equal(got["labels"][:, 50:], labels)
    assert trainable_parameters(m)[0] == 50 * 32


def test_frozen_base_only_prompt_gets_gradients(tmp_path):
    model = apply(make("llama"), make_config("prompt", num_virtual_tokens=N))
    ids, mask, labels = batch("llama")
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    out.loss.backward()
    assert [n for n, p in model.named_parameters() if p.grad is not None] == ["prompt"]
    save_trained(model, tmp_path / "p")
    again = load_trained(make("llama"), tmp_path / "p")
    assert torch.equal(again.prompt, model.prompt)
    assert again.config.model_type == "llama"                     # the wrapper forwards .config


@pytest.mark.parametrize("kwargs,words", [
    (dict(num_virtual_tokens=0), "num_virtual_tokens"), (dict(init="zeros"), "init"),
    (dict(init="text"), "init_token_ids"), (dict(init="labels", init_token_ids=(5, 100)), "outside the vocabulary")])
def test_bad_input(kwargs, words):
    model = make("gpt2")
    with pytest.raises(BenchError, match=words):
        apply(model, PromptConfig(**kwargs))
    assert all(p.requires_grad for p in model.parameters())
