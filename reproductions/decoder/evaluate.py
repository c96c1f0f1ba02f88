"""Perplexity and per-token KL of a model variant against the fp32 model, per text chunk, and intervals over chunks.

Per chunk c of T tokens: nll_c = mean over the T-1 predicted tokens of -log p(x_{t+1} | x_<=t) (nats), and
kl_c = mean over all T positions of KL(p_fp32 || p_variant) of the next-token distributions (nats/token). The
chunks are the sampling unit: a 95% interval is mean +- t_{0.975, n-1} * sd / sqrt(n) over the n chunks (Student
t; bench.stats.t975), paired where two variants are compared on the same chunks. Perplexity = exp(mean nll), its
interval exp() of the nll interval; the ratio of two perplexities is exp() of the paired nll difference.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from bench.stats import t975


def mean_ci(x) -> tuple[float, float, float]:
    """(mean, lo, hi): the 95% Student-t interval of the mean of x (one value per chunk); lo = hi = mean for n < 2."""
    x = np.asarray(x, dtype=float)
    m = float(x.mean())
    if len(x) < 2:
        return m, m, m
    h = t975(len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x))
    return m, m - h, m + h


@torch.no_grad()
def logprobs(model, ids: torch.Tensor) -> torch.Tensor:
    """(B, T) token ids -> (B, T, V) float32 log-probabilities of the next token."""
    return torch.log_softmax(model(input_ids=ids).logits.float(), dim=-1)


def chunk_nll(lp: torch.Tensor, ids: torch.Tensor) -> np.ndarray:
    """(B, T, V) log-probs, (B, T) ids -> (B,) mean NLL of tokens 1..T-1 (nats)."""
    tok = lp[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1)           # (B, T-1)
    return (-tok.double().mean(1)).numpy()


def chunk_kl(lp_ref: torch.Tensor, lp: torch.Tensor) -> np.ndarray:
    """(B, T, V) twice -> (B,) mean over positions of KL(ref || other) (nats/token)."""
    kl = (lp_ref.exp() * (lp_ref - lp)).sum(-1)                          # (B, T)
    return kl.double().mean(1).numpy()


@torch.no_grad()
def score(ref, model, ids: torch.Tensor, batch: int) -> dict[str, np.ndarray]:
    """Per chunk: nll of `model` and KL(ref || model); ref None scores `model` alone (kl = 0)."""
    nll, kl = [], []
    for k in range(0, len(ids), batch):
        b = ids[k:k + batch]                                             # (B, T)
        lp = logprobs(model, b)
        nll.append(chunk_nll(lp, b))
        kl.append(np.zeros(len(b)) if ref is None else chunk_kl(logprobs(ref, b), lp))
        del lp
    return {"nll": np.concatenate(nll), "kl": np.concatenate(kl)}
