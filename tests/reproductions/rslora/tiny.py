"""A tiny random-init GPT-2 for the rslora tests (no pretraining, no downloads)."""

from __future__ import annotations

import torch
import transformers as T


def tiny_gpt2(d: int = 32, layers: int = 1, vocab: int = 100, seed: int = 0):
    """GPT-2 of width d (c_attn: d -> 3d), dropout off, in eval mode."""
    T.logging.set_verbosity_error()
    torch.manual_seed(seed)
    cfg = T.GPT2Config(n_embd=d, n_layer=layers, n_head=4, vocab_size=vocab, n_positions=64, resid_pdrop=0.0,
                       embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    return T.GPT2LMHeadModel(cfg).eval()
