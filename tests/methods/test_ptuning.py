"""P-tuning: parity with peft's PromptEncoder (MLP and LSTM), template placeholders, fold(), bad input."""

from __future__ import annotations

import pytest
import torch

from bench import BenchError
from bench.methods import apply, fold, load_trained, make_config, save_trained, trainable_parameters
from bench.methods.ptuning import PTuningConfig
from tests.methods.helpers import N, assert_rel_close, batch, check_parity, greedy_without_cache, make, pair, \
    peft_prompt_model


def _copy_encoder(model, theirs):
    src = {k.removeprefix("encoder."): v for k, v in model.state_dict().items() if k.startswith("encoder.")}
    dst = theirs.prompt_encoder["default"].state_dict()
    assert set(src) == set(dst)
    theirs.prompt_encoder["default"].load_state_dict(src)


@pytest.mark.parametrize("kind,encoder", [("gpt2", "mlp"), ("llama", "lstm"), ("bert", "mlp")])
def test_parity_with_peft(peft, kind, encoder):
    base, ref = pair(kind)
    model = apply(base, make_config("ptuning", num_virtual_tokens=N, encoder=encoder, hidden_size=16))
    theirs = peft_prompt_model(peft, ref, kind, peft.PromptEncoderConfig, encoder_hidden_size=16,
                               encoder_reparameterization_type=encoder.upper())
    check_parity(model, theirs, kind, _copy_encoder)


def test_generate_and_fold():
    model = apply(make("gpt2", init=0.3), make_config("ptuning", num_virtual_tokens=N, encoder="lstm")).eval()
    ids, mask, _ = batch("gpt2", T=5)
    mask = torch.ones_like(mask)
    kw = dict(attention_mask=mask, max_new_tokens=4, do_sample=False, pad_token_id=0)
    out = model.generate(input_ids=ids, **kw)
    assert torch.equal(out, greedy_without_cache(model, ids, mask, 4))
    want = model(input_ids=ids, attention_mask=mask).logits
    fold(model)
    assert model.encoder is None and model.prompt.shape == (N, 32)
    assert trainable_parameters(model)[0] == N * 32
    assert_rel_close(model(input_ids=ids, attention_mask=mask).logits, want)
    assert torch.equal(model.generate(input_ids=ids, **kw), out)


def test_placeholders_replace_template_tokens(tmp_path):
    P = 99
    model = apply(make("gpt2"), make_config("ptuning", num_virtual_tokens=2, placeholder_token_id=P))
    ids = torch.tensor([[P, 5, 6, P, 7], [8, P, P, 9, 10]])
    labels = ids.clone()
    got = model.build_inputs(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels)
    emb = model.base.get_input_embeddings()(ids)
    prompt = model.prompt_vectors()
    e = got["inputs_embeds"]
    assert e.shape == emb.shape                                        # length unchanged
    assert torch.equal(e[0, 0], prompt[0]) and torch.equal(e[0, 3], prompt[1])
    assert torch.equal(e[1, 1], prompt[0]) and torch.equal(e[1, 2], prompt[1])
    assert torch.equal(e[0, 1], emb[0, 1]) and torch.equal(e[1, 4], emb[1, 4])
    assert torch.equal(got["labels"] == -100, ids == P)
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels)
    assert out.logits.shape == (2, 5, 100)
    out.loss.backward()
    assert {n for n, p in model.named_parameters() if p.grad is not None} == \
        {n for n, p in model.named_parameters() if p.requires_grad} and model.encoder.embedding.weight.grad.abs().sum() > 0
    with pytest.raises(BenchError, match="exactly 2 placeholder"):
        model(input_ids=torch.tensor([[P, 5, 6, 7]]))
    save_trained(model, tmp_path / "pt")
    again = load_trained(make("gpt2"), tmp_path / "pt")
    assert again.placeholder_token_id == P
    assert torch.equal(again(input_ids=ids).logits, model(input_ids=ids).logits)


@pytest.mark.parametrize("kwargs,words", [
    (dict(num_virtual_tokens=0), "num_virtual_tokens"), (dict(encoder="gru"), "encoder"),
    (dict(hidden_size=0), "hidden_size"), (dict(placeholder_token_id=100), "outside the vocabulary")])
def test_bad_input(kwargs, words):
    model = make("gpt2")
    with pytest.raises(BenchError, match=words):
        apply(model, PTuningConfig(**kwargs))
    assert all(p.requires_grad for p in model.parameters())
