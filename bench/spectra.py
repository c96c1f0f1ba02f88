"""Spectra of weight updates: how much of an update a few directions hold, and how two adapters' subspaces
overlap (the LoRA paper's Sec. 7 analysis, Hu et al. 2021, https://arxiv.org/abs/2106.09685)."""

from __future__ import annotations

import torch


def energy_share(w: torch.Tensor, ranks) -> dict[int, float]:
    """Share of ||w||_F^2 in the top-r singular directions, for each r in `ranks` (r past the rank: 1.0).

    w: (m, n), any float dtype (computed in float64)."""
    e = torch.linalg.svdvals(w.double()) ** 2
    cum = torch.cumsum(e, 0) / e.sum()
    return {r: float(cum[min(r, len(cum)) - 1]) for r in ranks}


def subspace_similarity(a_small: torch.Tensor, a_large: torch.Tensor, i: int, j: int) -> float:
    """phi(A1, A2, i, j) = ||U1[:, :i]^T U2[:, :j]||_F^2 / min(i, j) in [0, 1] (Hu et al. 2021, Sec. 7.2, Eq. 4).

    a_small: (r1, d), a_large: (r2, d): LoRA A matrices of one layer trained with ranks r1 < r2; U are their
    right-singular vectors (the row spaces in the input dimension d), top-i / top-j of them. 1 means the
    top-i directions of one lie inside the top-j of the other; a random pair in d dimensions gives about
    max(i, j) / d."""
    if not (1 <= i <= a_small.shape[0] and 1 <= j <= a_large.shape[0]):
        raise ValueError(f"need 1 <= i <= {a_small.shape[0]} and 1 <= j <= {a_large.shape[0]}, got {i}, {j}")
    u1 = torch.linalg.svd(a_small.double(), full_matrices=False).Vh[:i].T     # (d, i)
    u2 = torch.linalg.svd(a_large.double(), full_matrices=False).Vh[:j].T     # (d, j)
    return float((u1.T @ u2).pow(2).sum() / min(i, j))
