"""L6 on the knowledge task: is the full fine-tuning update low-rank, measured against a fair null?

- Energy share of dW = W_ft - W_0 (every block's c_attn) in its top r singular directions, against the update of
  full FT on the same prompts with permuted answers (the null: training alike, no knowledge to adapt to) and, as
  before, a Gaussian matrix of dW's shape (a weak null, reported only).
- The LoRA paper's subspace similarity phi(A_8, A_R, i, j) between the A matrices of LoRA r = 8 and the largest
  rank R trained with the same seed (Hu et al. 2021, Sec. 7.2, Eq. 4; bench.spectra); a random pair of
  subspaces gives about max(i, j) / d.
"""

from __future__ import annotations

import statistics

import torch

from bench.methods.common import blocks
from bench.schema import Recorder
from bench.spectra import energy_share, subspace_similarity

SPECTRUM_R = 8                     # the rank whose energy shares are compared (l6_*_top8), and LoRA's small rank
SUBSPACE_I = (1, 2, 4, 8)          # top-i directions of A_8 ...
SUBSPACE_J = (1, 8)                # ... against the top-j of A_R (and j = R)


def c_attn_weights(model) -> list[torch.Tensor]:
    """Copies of every block's c_attn weight (Conv1D: (d, 3d)), under an adapter if there is one."""
    out = []
    for blk in blocks(model)[1]:
        mod = blk.attn.c_attn
        out.append(getattr(mod, "base", mod).weight.detach().clone())
    return out


def update_spectra(w_ft: list[torch.Tensor], w0: list[torch.Tensor], seed: int, ranks, gaussian: bool = True
                   ) -> list[tuple]:
    """Per layer: (layer, energy share of dW by r, energy share of a Gaussian matrix of dW's shape by r; None when
    gaussian=False: a caller that reads only dW's). w_ft, w0: per layer c_attn weights (d, 3d)."""
    out = []
    for li, (a, b) in enumerate(zip(w_ft, w0)):
        dw = a.cpu() - b.cpu()                                                   # (d, 3d)
        noise = (torch.randn(dw.shape, generator=torch.Generator().manual_seed(1000 * seed + li), dtype=torch.float64)
                 if gaussian else None)                                          # its own generator: nothing else moves
        out.append((li, energy_share(dw, ranks), None if noise is None else energy_share(noise, ranks)))
    return out


def residual_ratio(top_null: float, top: float) -> float:
    """The null's energy outside the top 8 over the update's, (1 - top_null) / (1 - top): L6's decided measure
    (a ratio of the top-8 shares is bounded by 1 / top_null, this one is not); floored at 1e-12 for an update of
    rank <= 8 exactly."""
    return (1 - top_null) / max(1 - top, 1e-12)


def lora_a_matrices(model) -> list[torch.Tensor]:
    """Every block's c_attn LoRA A matrix, (r, d) each."""
    return [blk.attn.c_attn.lora_A.weight.detach().cpu().clone() for blk in blocks(model)[1]]


def _mean_share(spectra: list[tuple], r: int, col: int) -> float:
    """Mean over (seed, layer) of column `col` (2: dW, 3: Gaussian) at rank r; spectra rows are (seed, *update_spectra)."""
    return statistics.mean(sp[col][r] for sp in spectra)


def record_spectra(rec: Recorder, name: str, data: str, ranks, spectra: list[tuple], null: list[tuple]) -> None:
    """Energy shares by r (mean over layers and seeds) of the full-FT update, the permuted-answer update (null)
    and a Gaussian matrix; per layer at r = 8; the top-8 share ratios to the null and to the Gaussian (reported)
    and the null's residual energy outside the top 8 over the task update's (decided, L6).
    spectra, null: (seed, layer, energy of dW by r, energy of a Gaussian by r)."""
    if not spectra:
        return
    kw = {"model": name, "method": "full", "scale": "toy"}
    null_data = f"{data}-permuted-answers"
    for r in sorted(set(ranks) | {SPECTRUM_R}):
        p = {"r": r, "matrix": "c_attn"}
        rec.add("L6", "l6_fullft_energy_top_r", _mean_share(spectra, r, 2), unit="share", data=data, params=p, **kw)
        rec.add("L6", "l6_random_energy_top_r", _mean_share(spectra, r, 3), unit="share", model=name, method="-",
                scale="toy", params=p)
        if null:
            rec.add("L6", "l6_shuffled_energy_top_r", _mean_share(null, r, 2), unit="share", data=null_data,
                    params=p, **kw)
    for seed, li, e_dw, _ in spectra:
        rec.add("L6", "l6_fullft_energy_top8", e_dw[SPECTRUM_R], unit="share", data=data, seed=seed,
                params={"layer": li, "matrix": "c_attn"}, **kw)
    top = _mean_share(spectra, SPECTRUM_R, 2)
    rec.add("L6", "l6_energy_top8_over_random", top / _mean_share(spectra, SPECTRUM_R, 3), unit="ratio", data=data,
            **kw)
    if null:
        p_null = {"null": "full FT on permuted answers", "seeds": len({sp[0] for sp in null})}
        top_null = _mean_share(null, SPECTRUM_R, 2)
        rec.add("L6", "l6_energy_top8_over_shuffled", top / top_null, unit="ratio", data=data, params=p_null, **kw)
        rec.add("L6", "l6_residual_energy_top8_null_over_task", residual_ratio(top_null, top), unit="ratio",
                data=data, params=p_null, **kw)


def record_subspaces(rec: Recorder, name: str, data: str, a_mats: dict[tuple[int, int], list[torch.Tensor]],
                     width: int) -> None:
    """phi(A_8, A_R, i, j), mean over layers and the seeds that trained both ranks (a_mats: (r, seed) -> A per
    layer); info gives the random-subspace expectation max(i, j) / d."""
    ranks = sorted({r for r, _ in a_mats})
    r_large = ranks[-1] if ranks else 0
    seeds = sorted(s for r, s in a_mats if r == SPECTRUM_R and (r_large, s) in a_mats)
    if r_large <= SPECTRUM_R or not seeds:
        return
    for i in SUBSPACE_I:
        for j in sorted(set(SUBSPACE_J) | {r_large}):
            phi = statistics.mean(subspace_similarity(a8, ar, i, j) for s in seeds
                                  for a8, ar in zip(a_mats[(SPECTRUM_R, s)], a_mats[(r_large, s)]))
            rec.add("L6", "l6_subspace_similarity", phi, unit="share", model=name, data=data, method="lora",
                    scale="toy", params={"r_small": SPECTRUM_R, "r_large": r_large, "i": i, "j": j},
                    info={"random_expectation": max(i, j) / width, "seeds": seeds})


def record_control(rec: Recorder, name: str, data: str, planted: list[tuple], null: list[tuple], k: int) -> None:
    """L6's positive control: the decided measure (the null's energy outside the top 8 over the update's) applied to
    full FT distilling the planted rank-k teacher, whose update is low-rank by construction. Only if this reaches
    the rule's 1.5 can the measure's verdict on the knowledge task be believed.
    planted, null: (seed, layer, energy of dW by r, energy of a Gaussian by r or None)."""
    if not planted or not null:
        return
    top_planted, top_null = _mean_share(planted, SPECTRUM_R, 2), _mean_share(null, SPECTRUM_R, 2)
    kw = {"model": name, "method": "full", "scale": "toy", "data": data}
    rec.add("L6", "l6_control_planted_energy_top8", top_planted, unit="share", params={"k": k, "matrix": "c_attn"},
            **kw)
    rec.add("L6", "l6_control_residual_energy_top8_null_over_planted", residual_ratio(top_null, top_planted),
            unit="ratio", params={"k": k, "null": "full FT on permuted answers",
                                  "seeds": len({sp[0] for sp in planted})}, **kw)
