"""Issue 17 K3 and K7, across methods: left padding changes no row's logits, and generate() gives the same
tokens with and without the KV cache, both equal to greedy decoding by repeated full forwards."""

from __future__ import annotations

import pytest
import torch

from bench.methods import apply, make_config
from tests.methods.helpers import assert_rel_close, batch, greedy_without_cache, make, pair

PAD = 2  # row 1 is left-padded by this many tokens


def _left_padded(kind):
    ids, _, _ = batch(kind, T=7)
    mask = torch.ones_like(ids)
    ids[1, :PAD], mask[1, :PAD] = 0, 0
    return ids, mask


def _padding_gap(model, ids, mask) -> float:
    """Relative max difference between the padded row's logits in the batch and the row run alone."""
    with torch.no_grad():
        together = model(input_ids=ids, attention_mask=mask).logits[1, PAD:]
        alone = model(input_ids=ids[1:, PAD:], attention_mask=mask[1:, PAD:]).logits[0]
    return float((together - alone).abs().max() / alone.abs().max())


WRAPPERS = {"prompt": dict(num_virtual_tokens=4, init="random"),
            "prefix": dict(num_virtual_tokens=4, reparam=False),
            "ptuning": dict(num_virtual_tokens=4, hidden_size=8)}


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
@pytest.mark.parametrize("name", sorted(WRAPPERS))
def test_left_padding_changes_no_row(name, kind):
    """K3: positions come from the mask (the virtual tokens first, then the row's real tokens), so a left-padded
    row equals the row alone; before, a rotary Llama's padded row was off by a relative 1.2-1.6. GPT-2's own
    absolute positions are not invariant to left padding; the wrapped model is."""
    model = apply(make(kind, init=0.3), make_config(name, **WRAPPERS[name])).eval()
    ids, mask = _left_padded(kind)
    assert _padding_gap(model, ids, mask) < 1e-5
    # explicit position_ids count the real tokens from 0 (prompt used to refuse them)
    pos = (torch.arange(7) - torch.tensor([[0], [PAD]])).clamp_min(0)
    with torch.no_grad():
        assert_rel_close(model(input_ids=ids, attention_mask=mask, position_ids=pos).logits,
                         model(input_ids=ids, attention_mask=mask).logits)


@pytest.mark.parametrize("name", ["prompt", "prefix"])
def test_left_padding_we_do_better_than_peft(peft, name):
    """peft 0.21 leaves the pads between the virtual tokens and the text; on right padding both agree."""
    base, ref = pair("llama", init=0.3)
    model = apply(base, make_config(name, **WRAPPERS[name])).eval()
    if name == "prompt":
        cfg = peft.PromptTuningConfig(num_virtual_tokens=4, task_type="CAUSAL_LM")
    else:
        cfg = peft.PrefixTuningConfig(num_virtual_tokens=4, task_type="CAUSAL_LM")
    theirs = peft.get_peft_model(ref, cfg).eval()
    with torch.no_grad():
        theirs.prompt_encoder["default"].embedding.weight.copy_(model.prompt if name == "prompt" else model.prefix)
    ids, mask = _left_padded("llama")
    assert _padding_gap(model, ids, mask) < 1e-5
    peft_gap = _padding_gap(theirs, ids, mask)
    if name == "prompt":   # peft's logits include the virtual positions: compare the real ones
        with torch.no_grad():
            a = theirs(input_ids=ids, attention_mask=mask).logits[1, 4 + PAD:]
            b = theirs(input_ids=ids[1:, PAD:], attention_mask=mask[1:, PAD:]).logits[0, 4:]
        peft_gap = float((a - b).abs().max() / b.abs().max())
    assert peft_gap > 0.05
    ids, right, _ = batch("llama")                                  # right padding: identical real positions
    with torch.no_grad():
        a = model(input_ids=ids, attention_mask=right).logits
        b = theirs(input_ids=ids, attention_mask=right).logits
    b = b[:, 4:] if name == "prompt" else b
    assert_rel_close(a[right.bool()], b[right.bool()])


CAUSAL = {"lora": dict(r=2), "adapters": dict(size=4), "bitfit": {}, "full": {}, "top_k_layers": dict(k=1),
          **WRAPPERS, "ptuning_template": dict(num_virtual_tokens=2, hidden_size=8, placeholder_token_id=3)}


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
@pytest.mark.parametrize("name", sorted(CAUSAL))
def test_generate_with_and_without_cache(name, kind):
    """K7: prefix tuning without the cache kept appending its keys to the cache handed in (4 -> 11 -> 19 -> 28
    entries) and diverged from the second new token on. Every method: cached == uncached == full forwards,
    on an unpadded batch and (Llama: rotary, so the base model is invariant too) a left-padded one."""
    if name == "bitfit" and kind == "llama":
        pytest.skip("Llama has no biases")
    method = "ptuning" if name == "ptuning_template" else name
    model = apply(make(kind, init=0.3), make_config(method, **CAUSAL[name])).eval()
    model.generation_config.eos_token_id = None                     # token 0 must not end a row early
    ids, _, _ = batch(kind, T=5)
    if name == "ptuning_template":
        ids[:, 1:3] = 3                                             # the template's two placeholders
    batches = [(ids, torch.ones_like(ids))]
    if kind == "llama" and name != "ptuning_template":
        batches.append(_left_padded(kind))
    for ids, mask in batches:
        kw = dict(attention_mask=mask, max_new_tokens=4, do_sample=False, pad_token_id=0)
        want = greedy_without_cache(model, ids, mask, 4)
        assert torch.equal(model.generate(input_ids=ids, **kw), want)
        assert torch.equal(model.generate(input_ids=ids, use_cache=False, **kw), want)
