"""Q5 on a real decoder: the outlier census of the inputs of every Linear of a Llama block.

Four inputs per layer, by what reads them (q/k/v, gate/up share theirs):
    qkv:     input_layernorm(h)   -> q_proj, k_proj, v_proj    (hidden width)
    o:       attention output     -> o_proj                    (hidden width)
    gate_up: post_attention_layernorm(h) -> gate_proj, up_proj (hidden width)
    down:    silu(gate) * up      -> down_proj                 (intermediate width)
Per (layer, input): the share of positions with any |x| >= 6, max |x| per dimension, and the count of positions
at which each dimension reaches 6. Per input, across layers, Dettmers et al.'s criteria (arXiv 2208.07339,
Sec. 4.1; bench.numerics.outliers, whose definitions this accumulates batch by batch instead of holding every
layer's values): a dimension is an outlier feature when it reaches 6 in >= 25% of the layers and at >= 6% of the
positions (in some layer); "layers affected" / "positions affected" as there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from bench.numerics.outliers import LAYER_SHARE, OUTLIER_MAGNITUDE, POSITION_SHARE

INPUTS = {"qkv": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), "o": ("self_attn.o_proj",),
          "gate_up": ("mlp.gate_proj", "mlp.up_proj"), "down": ("mlp.down_proj",)}


def input_of(linear_name: str) -> tuple[int, str] | None:
    """'model.layers.3.mlp.up_proj' -> (3, 'gate_up'); None for a Linear outside the blocks (lm_head)."""
    parts = linear_name.split(".")
    if "layers" not in parts:
        return None
    i = parts.index("layers")
    rest = ".".join(parts[i + 2:])
    for kind, names in INPUTS.items():
        if rest in names:
            return int(parts[i + 1]), kind
    return None


@dataclass
class Tally:
    """Running census of one input kind: count (L, D) of positions >= 6, max |x| (L, D), positions with any
    value >= 6 per layer (L,), and the OR over layers (P, D)."""
    n_layers: int
    width: int
    positions: int
    count: torch.Tensor = field(init=False)
    maxabs: torch.Tensor = field(init=False)
    any_pos: torch.Tensor = field(init=False)
    pos_or: torch.Tensor = field(init=False)

    def __post_init__(self):
        L, D, P = self.n_layers, self.width, self.positions
        self.count = torch.zeros(L, D, dtype=torch.long)
        self.maxabs = torch.zeros(L, D)
        self.any_pos = torch.zeros(L, dtype=torch.long)
        self.pos_or = torch.zeros(P, D, dtype=torch.bool)

    def add(self, layer: int, offset: int, x: torch.Tensor) -> None:
        """x (B, T, D): the values at positions offset .. offset + B*T of one layer."""
        a = x.detach().reshape(-1, self.width).float().abs()                 # (M, D)
        big = a >= OUTLIER_MAGNITUDE
        self.count[layer] += big.sum(0)
        self.maxabs[layer] = torch.maximum(self.maxabs[layer], a.amax(0))
        self.any_pos[layer] += int(big.any(1).sum())
        self.pos_or[offset:offset + len(a)] |= big

    def summary(self) -> dict:
        """The Dettmers criteria over layers, and the whole input's maxima."""
        layer_share = (self.count > 0).float().mean(0)                       # (D,)
        pos_share = self.pos_or.float().mean(0)                              # (D,)
        dims = torch.nonzero((layer_share >= LAYER_SHARE) & (pos_share >= POSITION_SHARE)).flatten()
        layers_aff = float((self.count[:, dims] > 0).any(1).float().mean()) if dims.numel() else 0.0
        pos_aff = float(self.pos_or[:, dims].any(1).float().mean()) if dims.numel() else 0.0
        return {"outlier_dims": [int(d) for d in dims], "layers_affected": layers_aff,
                "positions_affected": pos_aff, "max_abs": float(self.maxabs.max()),
                "share_positions_ge6": float(self.any_pos.sum()) / (self.n_layers * self.positions),
                "share_layers_ge6": float((self.any_pos > 0).float().mean())}

    def top_dims(self, k: int) -> list[int]:
        """The k dimensions with the most positions >= 6 over all layers, ties by max |x|."""
        total, peak = self.count.sum(0).numpy(), self.maxabs.amax(0).numpy()
        return [int(d) for d in np.lexsort((-peak, -total))[:k]]


@torch.no_grad()
def run_census(model, ids: torch.Tensor, batch: int) -> dict[str, Tally]:
    """{input kind: Tally} over the chunks `ids` (N, T) read by the fp32 model."""
    layers = len(model.model.layers)
    cfg = model.config
    width = {"qkv": cfg.hidden_size, "o": cfg.num_attention_heads * getattr(cfg, "head_dim", cfg.hidden_size //
                                                                             cfg.num_attention_heads),
             "gate_up": cfg.hidden_size, "down": cfg.intermediate_size}
    tallies = {k: Tally(layers, width[k], ids.numel()) for k in INPUTS}
    offset = [0]
    hooks = []
    for name, mod in model.named_modules():
        where = input_of(name)
        if where is not None and name.endswith(INPUTS[where[1]][0]):           # the first reader of each input
            layer, kind = where
            hooks.append(mod.register_forward_hook(
                lambda m, inp, out, layer=layer, kind=kind: tallies[kind].add(layer, offset[0], inp[0])))
    try:
        for k in range(0, len(ids), batch):
            b = ids[k:k + batch]
            model(input_ids=b)
            offset[0] += b.numel()
    finally:
        for h in hooks:
            h.remove()
    return tallies


def census_tables(tallies: dict[str, Tally], top: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(census.csv: one row per (input, layer); census_dims.csv: per (input, layer, top dim) the share of
    positions >= 6 and max |x|, the heatmap's cells)."""
    rows, cells = [], []
    for kind, t in tallies.items():
        dims = t.top_dims(top)
        for layer in range(t.n_layers):
            peak, at = t.maxabs[layer].max(0)
            rows.append({"input": kind, "layer": layer, "share_positions_ge6": float(t.any_pos[layer]) / t.positions,
                         "dims_ge6": int((t.count[layer] > 0).sum()), "max_abs": float(peak), "argmax_dim": int(at)})
            cells += [{"input": kind, "layer": layer, "dim": d, "rank": r,
                       "share_ge6": float(t.count[layer, d]) / t.positions, "max_abs": float(t.maxabs[layer, d])}
                      for r, d in enumerate(dims)]
    return pd.DataFrame(rows), pd.DataFrame(cells)
