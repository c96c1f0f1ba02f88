"""Prefix tuning on BERT self-attention (an encoder: no causal mask, absolute positions): our wrapper against
an explicit implementation of attention over [prefix keys; token keys], on a tiny random BERT.

(peft 0.21.2 cannot do this with transformers 5.x: `PeftModelForSequenceClassification` raises "Model does not
support past key values which are required for prefix tuning" because BERT's forward now names the cache `cache`.)
"""

import math

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification
from transformers.models.bert import modeling_bert

from bench.methods import apply, make_config


def tiny_bert(seed=0):
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, num_labels=2, max_position_embeddings=64, attn_implementation="eager")
    return BertForSequenceClassification(cfg).eval()


def reference_logits(model, table, ids, mask, n):
    """The base model with every BertSelfAttention replaced by explicit attention over the prefix + tokens."""
    L, H = model.config.num_hidden_layers, model.config.num_attention_heads
    hd = model.config.hidden_size // H
    P = table.view(n, L * 2, H, hd).permute(1, 2, 0, 3)                     # (2L, H, n, hd)
    B, T = ids.shape
    pad = (1.0 - mask.float())[:, None, None, :] * torch.finfo(torch.float32).min   # (B, 1, 1, T)
    full_mask = torch.cat([torch.zeros(B, 1, 1, n), pad], dim=-1)          # prefix always visible

    def manual(self, hidden_states, attention_mask=None, **kw):
        i = self.layer_idx
        shape = (*hidden_states.shape[:-1], -1, hd)
        q = self.query(hidden_states).view(shape).transpose(1, 2)
        k = torch.cat([P[2 * i].expand(B, -1, -1, -1), self.key(hidden_states).view(shape).transpose(1, 2)], 2)
        v = torch.cat([P[2 * i + 1].expand(B, -1, -1, -1), self.value(hidden_states).view(shape).transpose(1, 2)], 2)
        w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + full_mask, dim=-1)
        return (w @ v).transpose(1, 2).reshape(*hidden_states.shape[:-1], -1), w

    orig = modeling_bert.BertSelfAttention.forward
    modeling_bert.BertSelfAttention.forward = manual
    try:
        pos = torch.arange(n, n + T).expand(B, -1)                          # the wrapper's positions: n + j
        return model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
    finally:
        modeling_bert.BertSelfAttention.forward = orig


@pytest.mark.parametrize("reparam", [False, True])
def test_prefix_on_bert_matches_explicit_attention(reparam):
    model = tiny_bert()
    n = 3
    wrapped = apply(model, make_config("prefix", num_virtual_tokens=n, reparam=reparam, reparam_hidden=16)).eval()
    ids = torch.randint(5, 60, (3, 7))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0                                                          # a right-padded row
    with torch.no_grad():
        got = wrapped(input_ids=ids, attention_mask=mask).logits
        want = reference_logits(wrapped.base, wrapped.prefix_table(), ids, mask, n)
    assert got.shape == (3, 2)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_prefix_on_bert_changes_output_trains_and_ignores_padding():
    model = tiny_bert()
    with torch.no_grad():
        base_logits = model(input_ids=torch.randint(5, 60, (1, 6))).logits
    wrapped = apply(model, make_config("prefix", num_virtual_tokens=4, reparam=False))
    ids = torch.randint(5, 60, (2, 6))
    out = wrapped(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.tensor([0, 1]))
    out.loss.backward()
    assert wrapped.prefix.grad is not None and wrapped.prefix.grad.abs().sum() > 0
    assert all(p.grad is None for n, p in wrapped.base.named_parameters() if not n.startswith("classifier"))
    wrapped.eval()
    with torch.no_grad():
        alone = wrapped(input_ids=ids[:1], attention_mask=torch.ones(1, 6, dtype=torch.long)).logits
        padded = torch.cat([ids[:1], torch.zeros(1, 3, dtype=torch.long)], 1)
        pmask = torch.cat([torch.ones(1, 6), torch.zeros(1, 3)], 1).long()
        got = wrapped(input_ids=padded, attention_mask=pmask).logits
    torch.testing.assert_close(got, alone, atol=1e-5, rtol=1e-5)
    assert base_logits.shape == alone.shape
