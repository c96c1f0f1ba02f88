"""Stand-ins until the ladder (`bench.ladder`) is wired in: a tiny GPT-2 from a config, and token data from
a random Markov chain with a fixed seed. Training and held-out perplexity are bench.train's (`train`,
`perplexity`, which takes these (B, T) token batches as they are).

The Markov chain gives data a model can learn (unlike uniform tokens), with a known floor: the chain's
entropy rate. Harnesses take a `model_factory` so a pretrained rung can replace `tiny_gpt2` later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from bench import BenchError


@dataclass(frozen=True)
class ToyLMConfig:
    vocab: int = 128        # small vocabulary: the LM head dominates tiny models otherwise (machine notes)
    seq_len: int = 64
    d_model: int = 64
    n_layer: int = 2
    n_head: int = 4
    help: str = "GPT-2 block structure (LayerNorm -> attention / MLP with Conv1D), no dropout"


@dataclass(frozen=True)
class MarkovData:
    vocab: int = 128
    sharpness: float = 3.0  # scale of each row's Gaussian logits: larger = fewer likely successors
    seed: int = 1234        # the chain itself is fixed; batches vary with their own seed


def tiny_gpt2(cfg: ToyLMConfig = ToyLMConfig(), seed: int = 0) -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel
    gcfg = GPT2Config(vocab_size=cfg.vocab, n_positions=cfg.seq_len, n_embd=cfg.d_model, n_layer=cfg.n_layer,
                      n_head=cfg.n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                      bos_token_id=0, eos_token_id=0)
    torch.manual_seed(seed)
    return GPT2LMHeadModel(gcfg)


def transition_matrix(data: MarkovData) -> torch.Tensor:
    """Row-stochastic (V, V): softmax of Gaussian logits times `sharpness`, from the chain's own seed."""
    g = torch.Generator().manual_seed(data.seed)
    return torch.softmax(data.sharpness * torch.randn(data.vocab, data.vocab, generator=g), dim=1)


def entropy_rate_ppl(data: MarkovData) -> float:
    """exp(entropy rate) of the chain under its stationary distribution: the best achievable perplexity."""
    P = transition_matrix(data).double()
    pi = torch.full((data.vocab,), 1.0 / data.vocab, dtype=torch.float64)
    for _ in range(500):
        pi = pi @ P
    h = -(pi[:, None] * P * torch.log(P.clamp_min(1e-300))).sum()
    return math.exp(float(h))


def markov_batches(data: MarkovData, n_batches: int, batch_size: int, seq_len: int, seed: int) -> list[torch.Tensor]:
    """`n_batches` LongTensors (batch_size, seq_len) sampled from the chain (start state uniform)."""
    if min(n_batches, batch_size, seq_len) < 1:
        raise BenchError(f"markov_batches needs positive sizes, got {n_batches}, {batch_size}, {seq_len}")
    P = transition_matrix(data)
    g = torch.Generator().manual_seed(seed)
    n = n_batches * batch_size
    tok = torch.empty(n, seq_len, dtype=torch.long)
    tok[:, 0] = torch.randint(0, data.vocab, (n,), generator=g)
    for t in range(1, seq_len):
        tok[:, t] = torch.multinomial(P[tok[:, t - 1]], 1, generator=g).squeeze(1)
    return list(tok.split(batch_size))
