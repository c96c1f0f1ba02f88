"""Q5 on a real model: the outlier census of MiniLM's LayerNorm outputs.

Every LayerNorm output feeds a Linear in BERT (embeddings -> q/k/v, attention output -> FFN input, FFN output
-> next q/k/v / the head), so the 13 LayerNorm outputs are what LLM.int8() would see. Read on test snippets, at
the real tokens only (padding masked out). The magnitude |x| >= 6 is bench.numerics.outliers.OUTLIER_MAGNITUDE
(Dettmers et al. 2022, Sec. 4.1)."""

from __future__ import annotations

import pandas as pd
import torch

from bench.numerics.outliers import OUTLIER_MAGNITUDE, census_from_states
from bench.train import collate


@torch.no_grad()
def layernorm_states(model, ds, batch: int = 32) -> tuple[list[str], list[torch.Tensor]]:
    """Names of the LayerNorms and, per LayerNorm, its outputs at the real tokens of ds: (P, D) each."""
    norms = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.LayerNorm)]
    store: dict[int, list] = {i: [] for i in range(len(norms))}
    mask_now = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, i=i: store[i].append(out[mask_now["m"]]))
             for i, (_, m) in enumerate(norms)]
    try:
        rows = [{"input_ids": r} for r in ds["input_ids"]]
        for k in range(0, len(rows), batch):
            b = collate(rows[k:k + batch])
            mask_now["m"] = b["attention_mask"].bool()
            model(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
    finally:
        for h in hooks:
            h.remove()
    return [n for n, _ in norms], [torch.cat(store[i]) for i in range(len(norms))]


def per_layernorm(name: str, X: torch.Tensor) -> dict:
    """One LayerNorm's outputs X (P, D): max |x|, share of tokens with an outlier, dims reaching the magnitude,
    excess kurtosis of all values, and the five largest dims by max |x|."""
    X = X.float()
    big = X.abs() >= OUTLIER_MAGNITUDE
    flat = X.flatten().double()
    z = (flat - flat.mean()) / flat.std()
    vals, dims_ = X.abs().amax(0).topk(5)
    return {"layernorm": name, "max_abs": float(X.abs().max()), "tokens_ge6": float(big.any(1).float().mean()),
            "dims_ge6": int(big.any(0).sum()), "kurtosis": float((z ** 4).mean() - 3.0),
            "top_dims": dims_.tolist(), "top_abs": [round(float(v), 3) for v in vals]}


def census(names, states) -> tuple[dict, pd.DataFrame]:
    """(the q5_* summary metrics, one row per LayerNorm) of the states from layernorm_states."""
    df = pd.DataFrame([per_layernorm(name, X) for name, X in zip(names, states)])
    c = census_from_states(states, source="layernorm_outputs")
    allX = torch.stack([x.abs().amax(1) for x in states])      # (L, P): per token, max over dims
    summary = {"q5_share_layers_ge6": float((df["max_abs"] >= OUTLIER_MAGNITUDE).mean()),
               "q5_share_tokens_ge6": float((allX >= OUTLIER_MAGNITUDE).any(0).float().mean()),
               "q5_max_abs": float(df["max_abs"].max()), "q5_kurtosis_max": float(df["kurtosis"].max()),
               "q5_kurtosis_median": float(df["kurtosis"].median()),
               "q5_n_outlier_dims": float(len(c.outlier_dims)),
               "q5_dettmers_layers_affected": float(c.layers_affected),
               "q5_dettmers_positions_affected": float(c.positions_affected)}
    return summary, df
