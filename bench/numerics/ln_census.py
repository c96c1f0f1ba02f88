"""Census of the LayerNorm outputs that feed a Linear: what an int8 layer quantizes (claim Q5).

Dettmers et al. 2022 ("LLM.int8()", Sec. 4.1, Fig. 3) count outlier features in the *inputs of the linear
layers*, which in a pre-LN transformer are LayerNorm outputs (GPT-2: ln_1 -> attn.c_attn, ln_2 -> mlp.c_fc;
BERT: embeddings / attention-output / output LayerNorms -> the next query/key/value or FFN input). The
residual stream itself is never quantized, and it grows with depth as a whole; counting it mistakes that growth
for outliers (issue 15: 132 of 160 residual dims "outliers" at cpu-1m).

Which LayerNorms feed a Linear is found, not listed per architecture: in one forward pass, a LayerNorm feeds a
Linear when the Linear's input IS the LayerNorm's output tensor (the same object; eval-mode dropout returns its
input unchanged). A reshape or copy in between hides the pair, so the list errs on the short side.

Per LayerNorm (rows `lncensus_layer_*`): the share of positions with any |x| >= 6 (the paper's magnitude,
`outliers.OUTLIER_MAGNITUDE`), the three largest per-dimension max |x| (three distinct dims), and the excess
kurtosis of all its values (E[(x - mu)^4] / var^2 - 3: 0 for a Gaussian, large when a few values are far out; a
continuous measure of heavy tails that does not depend on the threshold 6, cf. Bondarenko et al. 2023, who track
kurtosis of these activations as the outlier measure). Per model: the share of LayerNorms with any |x| >= 6 and of
positions where any LayerNorm has one, and the paper's systematic-outlier counts (`outliers.census_from_states`:
a dim with |x| >= 6 in >= 25% of layers and >= 6% of positions; Fig. 3a "% layers affected", Fig. 3b positions).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from bench import BenchError
from bench.numerics.outliers import OUTLIER_MAGNITUDE, census_from_states

TOP_K = 3   # largest per-dim magnitudes kept per LayerNorm


def _is_linear(m: nn.Module) -> bool:
    from transformers.pytorch_utils import Conv1D
    return isinstance(m, (nn.Linear, Conv1D)) or type(m).__name__ == "Int8Linear"


def _forward(model: nn.Module, batch) -> None:
    """One forward of a batch: a LongTensor (B, T) of unpadded ids, or a dict with input_ids / attention_mask."""
    if isinstance(batch, torch.Tensor):
        model(input_ids=batch)
    else:
        model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask"))


@torch.no_grad()
def feeding_layernorms(model: nn.Module, batch) -> list[tuple[str, list[str]]]:
    """[(LayerNorm name, [names of the Linear layers whose input is its output])], in module order, for the
    LayerNorms that feed at least one Linear, found by tensor identity in one forward of `batch`."""
    outs: dict[str, torch.Tensor] = {}
    inputs: list[tuple[str, torch.Tensor]] = []
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, nn.LayerNorm):
            hooks.append(m.register_forward_hook(lambda mod, i, o, n=name: outs.__setitem__(n, o)))
        elif _is_linear(m):
            hooks.append(m.register_forward_hook(lambda mod, i, o, n=name: inputs.append((n, i[0]))))
    was = model.training
    model.eval()
    try:
        _forward(model, batch)
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    pairs = [(ln, [n for n, x in inputs if x is o]) for ln, o in outs.items()]
    return [(ln, lins) for ln, lins in pairs if lins]


@torch.no_grad()
def layernorm_outputs(model: nn.Module, batches, names: list[str]) -> list[torch.Tensor]:
    """Per named LayerNorm, its outputs at the real positions of all `batches` -> (P, D) each (padding, where a
    batch has an attention_mask, left out), float32."""
    store: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    mask: dict[str, torch.Tensor | None] = {"m": None}

    def keep(n, o):
        store[n].append(o[mask["m"]] if mask["m"] is not None else o.reshape(-1, o.shape[-1]))

    mods = dict(model.named_modules())
    hooks = [mods[n].register_forward_hook(lambda mod, i, o, n=n: keep(n, o.float())) for n in names]
    was = model.training
    model.eval()
    try:
        for b in batches:
            am = None if isinstance(b, torch.Tensor) else b.get("attention_mask")
            mask["m"] = None if am is None else am.bool()
            _forward(model, b)
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    return [torch.cat(store[n]) for n in names]


def excess_kurtosis(x: torch.Tensor) -> float:
    """Excess kurtosis of all values of x (float64): E[(x - mean)^4] / var^2 - 3 (population moments); 0 for a
    Gaussian, -1.2 for a uniform, large for heavy tails. nan for a constant tensor."""
    v = x.detach().reshape(-1).double()
    c = v - v.mean()
    var = c.pow(2).mean()
    if float(var) == 0.0:
        return float("nan")
    return float(c.pow(4).mean() / var.pow(2) - 3.0)


def layer_stats(X: torch.Tensor) -> dict:
    """One LayerNorm's outputs X (P, D): share of positions with any |x| >= 6, the TOP_K largest per-dim max |x|
    (and their dims), max |x|, excess kurtosis of all values."""
    a = X.abs()
    per_dim = a.amax(0)                                                   # (D,)
    top, dims = per_dim.topk(min(TOP_K, per_dim.numel()))
    return {"share_positions_ge6": float((a >= OUTLIER_MAGNITUDE).any(1).float().mean()),
            "top_abs": [float(t) for t in top], "top_dims": [int(d) for d in dims],
            "max_abs": float(per_dim.max()), "kurtosis": excess_kurtosis(X)}


@dataclass
class LNCensus:
    names: list[str]                       # LayerNorms that feed a Linear, in module order
    layers: list[dict] = field(default_factory=list)   # layer_stats per LayerNorm
    share_layers_ge6: float = 0.0          # LayerNorms with any |x| >= 6
    share_positions_ge6: float = 0.0       # positions where some LayerNorm has any |x| >= 6
    layers_affected: float = 0.0           # Dettmers' criteria (systematic outlier dims), Fig. 3a
    positions_affected: float = 0.0        # ... Fig. 3b
    outlier_dims: list[int] = field(default_factory=list)

    def summary(self) -> dict:
        """Model-level numbers, as rows name them (lncensus_<key>)."""
        k = torch.tensor([l["kurtosis"] for l in self.layers], dtype=torch.float64)
        return {"share_layers_ge6": self.share_layers_ge6, "share_positions_ge6": self.share_positions_ge6,
                "layers_affected": self.layers_affected, "positions_affected": self.positions_affected,
                "n_outlier_dims": float(len(self.outlier_dims)),
                "max_abs": max(l["max_abs"] for l in self.layers),
                "kurtosis_median": float(k.median()), "kurtosis_max": float(k.max())}


def census_of_states(names: list[str], states: list[torch.Tensor]) -> LNCensus:
    """The census of per-LayerNorm outputs states[i] (P, D), the same P positions for every LayerNorm."""
    if not states:
        raise BenchError("LayerNorm census: no LayerNorm output feeds a Linear in this model")
    layers = [layer_stats(X) for X in states]
    any_big = torch.stack([(X.abs() >= OUTLIER_MAGNITUDE).any(1) for X in states])   # (L, P)
    c = census_from_states(states, source="layernorm_outputs")
    return LNCensus(names=list(names), layers=layers,
                    share_layers_ge6=float(any_big.any(1).float().mean()),
                    share_positions_ge6=float(any_big.any(0).float().mean()),
                    layers_affected=c.layers_affected, positions_affected=c.positions_affected,
                    outlier_dims=c.outlier_dims)


def ln_census(model: nn.Module, batches) -> tuple[LNCensus, list[torch.Tensor]]:
    """(the census of `model`'s LayerNorm outputs that feed a Linear over `batches`, the states it read (P, D)
    per LayerNorm). Batches: LongTensors (B, T) or dicts with input_ids / attention_mask."""
    names = [n for n, _ in feeding_layernorms(model, batches[0])]
    states = layernorm_outputs(model, batches, names)
    return census_of_states(names, states), states
