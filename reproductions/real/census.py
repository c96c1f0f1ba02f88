"""Q5 on a real model: the outlier census of MiniLM's LayerNorm outputs that feed a Linear.

What LLM.int8() would quantize are the inputs of the Linear layers; in BERT those are LayerNorm outputs (embeddings
-> q/k/v, attention output -> FFN input, FFN output -> the next layer's q/k/v). Which LayerNorms feed a Linear is
found by `bench.numerics.ln_census` (tensor identity in one forward; the int8 group's census uses the same code), so
the last layer's output LayerNorm, read only by mean pooling, is left out: 12 of MiniLM's 13. Read on test snippets,
at the real tokens only (padding masked out). The magnitude |x| >= 6 is bench.numerics.outliers.OUTLIER_MAGNITUDE
(Dettmers et al. 2022, Sec. 4.1)."""

from __future__ import annotations

import pandas as pd
import torch

from bench.numerics.ln_census import census_of_states, excess_kurtosis, feeding_layernorms, layernorm_outputs
from bench.numerics.outliers import OUTLIER_MAGNITUDE
from bench.train import collate


@torch.no_grad()
def layernorm_states(model, ds, batch: int = 32) -> tuple[list[str], list[torch.Tensor]]:
    """Names of the LayerNorms that feed a Linear and, per LayerNorm, its outputs at the real tokens of ds (P, D)."""
    rows = [{"input_ids": r} for r in ds["input_ids"]]
    batches = [collate(rows[k:k + batch]) for k in range(0, len(rows), batch)]
    names = [n for n, _ in feeding_layernorms(model, batches[0])]
    return names, layernorm_outputs(model, batches, names)


def per_layernorm(name: str, X: torch.Tensor) -> dict:
    """One LayerNorm's outputs X (P, D): max |x|, share of tokens with an outlier, dims reaching the magnitude,
    excess kurtosis of all values, and the five largest dims by max |x|."""
    a = X.float().abs()
    big = a >= OUTLIER_MAGNITUDE
    vals, dims_ = a.amax(0).topk(5)
    return {"layernorm": name, "max_abs": float(a.max()), "tokens_ge6": float(big.any(1).float().mean()),
            "dims_ge6": int(big.any(0).sum()), "kurtosis": excess_kurtosis(X),
            "top_dims": dims_.tolist(), "top_abs": [round(float(v), 3) for v in vals]}


def census(names, states) -> tuple[dict, pd.DataFrame]:
    """(the q5_* summary metrics, one row per LayerNorm) of the states from layernorm_states."""
    df = pd.DataFrame([per_layernorm(name, X) for name, X in zip(names, states)])
    c = census_of_states(names, states)
    return {"q5_share_layers_ge6": c.share_layers_ge6, "q5_share_tokens_ge6": c.share_positions_ge6,
            "q5_max_abs": float(df["max_abs"].max()), "q5_kurtosis_max": float(df["kurtosis"].max()),
            "q5_kurtosis_median": float(df["kurtosis"].median()), "q5_n_outlier_dims": float(len(c.outlier_dims)),
            "q5_dettmers_layers_affected": c.layers_affected,
            "q5_dettmers_positions_affected": c.positions_affected}, df
