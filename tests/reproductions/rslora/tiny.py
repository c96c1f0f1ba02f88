"""A tiny random-init GPT-2 for the rslora tests (no pretraining, no downloads), and a micro sweep's context."""

from __future__ import annotations

import torch
import transformers as T

from bench.profiles import get_profile
from bench.repro import RunContext


def tiny_gpt2(d: int = 32, layers: int = 1, vocab: int = 100, seed: int = 0):
    """GPT-2 of width d (c_attn: d -> 3d), dropout off, in eval mode."""
    T.logging.set_verbosity_error()
    torch.manual_seed(seed)
    cfg = T.GPT2Config(n_embd=d, n_layer=layers, n_head=4, vocab_size=vocab, n_positions=64, resid_pdrop=0.0,
                       embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    return T.GPT2LMHeadModel(cfg).eval()


def micro_ctx(folder, out, **settings) -> RunContext:
    """A smoke-profile context for a micro sweep on the checkpoint in `folder` (conftest's micro_folder): ranks
    2, 8 (32 is capped at d = 16), 4 steps, 2 seeds, one worker; `settings` override any field."""
    over = dict(ranks=(2, 8, 32), steps=4, batch=8, warmup=1, eval_every=2, per_person=1, heldout_rows=8,
                lrs=(2e-3, 8e-3), workers=1)
    over.update(settings)
    return RunContext(profile=get_profile("smoke"), seeds=(0, 1), out_dir=out, model=str(folder),
                      options={"settings": over})
