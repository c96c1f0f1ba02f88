"""Helpers for the method tests: tiny float32 models built from configs (no downloads), fixed seeds, inputs,
relative comparisons, and peft-parity utilities. Fixtures live in conftest.py."""

from __future__ import annotations

import copy
import warnings

import torch

from bench.methods import trainable_parameters

VOCAB = 100


def quiet():
    warnings.filterwarnings("ignore")
    import transformers
    transformers.logging.set_verbosity_error()


def make(kind: str, seed: int = 0, init: float = 0.02):
    """A fresh tiny model: gpt2 / llama (GQA) / opt causal LMs, or bert (sequence classification, 3 labels).
    `init` is the weights' init std; a large one (0.3) makes greedy decoding depend on the context."""
    quiet()
    import transformers as T
    torch.manual_seed(seed)
    if kind == "gpt2":
        cfg = T.GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=VOCAB, n_positions=64, resid_pdrop=0.0,
                           embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0,
                           initializer_range=init)
        return T.GPT2LMHeadModel(cfg)
    if kind == "llama":
        cfg = T.LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                            num_key_value_heads=2, vocab_size=VOCAB, max_position_embeddings=64, bos_token_id=0,
                            eos_token_id=0, pad_token_id=0, initializer_range=init)
        return T.LlamaForCausalLM(cfg)
    if kind == "opt":
        cfg = T.OPTConfig(hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=4, vocab_size=VOCAB,
                          max_position_embeddings=64, word_embed_proj_dim=32, dropout=0.0, attention_dropout=0.0,
                          bos_token_id=0, eos_token_id=0, pad_token_id=0, init_std=init)
        return T.OPTForCausalLM(cfg)
    if kind == "bert":
        cfg = T.BertConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           vocab_size=VOCAB, max_position_embeddings=64, num_labels=3, hidden_dropout_prob=0.0,
                           attention_probs_dropout_prob=0.0, initializer_range=init)
        return T.BertForSequenceClassification(cfg)
    raise ValueError(kind)


def pair(kind: str, seed: int = 0, init: float = 0.02):
    """Two models with identical weights: one for us, one for peft."""
    m = make(kind, seed, init)
    return m, copy.deepcopy(m)


def batch(kind: str, B: int = 2, T: int = 7, seed: int = 1):
    """input_ids, attention_mask (row 1 right-padded by two), labels (token ids, or classes for bert)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[1, -2:] = 0
    if kind == "bert":
        labels = torch.randint(0, 3, (B,), generator=g)
    else:
        labels = ids.masked_fill(mask == 0, -100)
    return ids, mask, labels


def assert_rel_close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-5):
    """max |a - b| <= rtol * max |b| (relative to the tensor's scale)."""
    a, b = a.detach().float(), b.detach().float()
    assert a.shape == b.shape, (a.shape, b.shape)
    err, scale = (a - b).abs().max().item(), b.abs().max().item()
    assert err <= rtol * max(scale, 1e-12), f"max |diff| {err:.3g} > {rtol} x {scale:.3g}"


def adamw_step(model, loss, lr: float = 1e-2):
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    loss.backward()
    opt.step()


def greedy_without_cache(model, ids, mask, steps):
    """Reference decoding: recompute the whole sequence each step (no generate(), no reused cache)."""
    seq = ids
    with torch.no_grad():
        for _ in range(steps):
            nxt = model(input_ids=seq, attention_mask=mask).logits[:, -1].argmax(-1, keepdim=True)
            seq, mask = torch.cat([seq, nxt], 1), torch.cat([mask, torch.ones_like(nxt)], 1)
    return seq


N = 3  # virtual tokens in the prompt-method parity tests


def peft_prompt_model(peft, ref, kind, cfg_cls, **kw):
    cfg = cfg_cls(num_virtual_tokens=N, task_type="SEQ_CLS" if kind == "bert" else "CAUSAL_LM", **kw)
    return peft.get_peft_model(ref, cfg)


def check_parity(model, theirs, kind, copy):
    """Same counts, outputs, loss and AdamW update, after `copy(model, theirs)` made the weights equal."""
    copy(model, theirs)
    if kind == "bert":   # peft keeps a frozen copy of the classifier besides the trained one
        cls = theirs.base_model.classifier.modules_to_save["default"]
        with torch.no_grad():
            cls.weight.copy_(model.base.classifier.weight)
            cls.bias.copy_(model.base.classifier.bias)
        assert trainable_parameters(model)[0] == theirs.get_nb_trainable_parameters()[0]
    else:
        assert trainable_parameters(model) == theirs.get_nb_trainable_parameters()
    ids, mask, labels = batch(kind)
    a = model(input_ids=ids, attention_mask=mask, labels=labels)
    b = theirs(input_ids=ids, attention_mask=mask, labels=labels)
    if kind != "bert":
        assert b.logits.shape == (2, N + ids.shape[1], 100)        # peft: virtual positions included
        assert a.logits.shape == ids.shape + (100,)                 # ours: the original positions
        assert_rel_close(a.logits, b.logits[:, N:])
        model.virtual_logits = True
        assert_rel_close(model(input_ids=ids, attention_mask=mask).logits, b.logits)
        model.virtual_logits = False
    else:
        assert_rel_close(a.logits, b.logits)
    assert_rel_close(a.loss, b.loss)
    adamw_step(model, a.loss)
    adamw_step(theirs, b.loss)
    ours_p = [p for n, p in model.named_parameters() if p.requires_grad]
    theirs_p = [p for n, p in theirs.named_parameters() if p.requires_grad]
    ours_p.sort(key=lambda p: (tuple(p.shape), p.sum().item()))
    theirs_p.sort(key=lambda p: (tuple(p.shape), p.sum().item()))
    for x, y in zip(ours_p, theirs_p, strict=True):
        assert_rel_close(x, y)
