"""Outlier features (claim Q5): a census of large hidden-state values, and planting outliers on purpose.

Census definitions (Dettmers et al. 2022, Sec. 4.1): a feature dimension d is an *outlier feature* when
|x| >= 6 occurs in it in >= 25% of the layers and at >= 6% of the sequence positions. Our reading of the
two fractions, for one model over a set of token sequences:
- layers(d):    share of layers whose values in dimension d reach |x| >= 6 anywhere;
- positions(d): share of token positions at which dimension d reaches |x| >= 6 in at least one layer.
Model level: "% layers affected" = share of layers where some outlier dimension reaches 6; "% positions
affected" = share of positions where some outlier dimension reaches 6 in some layer.

The census reads either the residual stream (`output_hidden_states`, block outputs) or the inputs of the
linear layers that read the residual stream (attention and MLP input projections, which is where int8
quantization sees the values).

`plant_outliers` scales a few dimensions of the MLP's input (via the preceding LayerNorm's weight and
bias) and divides the matching rows of the MLP's first weight by the same factor, so the FP32 function
is unchanged while the int8 layer sees outliers: the mechanism by which plain int8 breaks.

`plant_outliers_all_ln` does the same at the paper's magnitudes on EVERY LayerNorm output that feeds a Linear
in GPT-2 blocks (ln_1 -> attn.c_attn and ln_2 -> mlp.c_fc, all layers), the same dims everywhere (the paper's
outliers are systematic: the same few dims in every layer, Dettmers et al. 2022 Sec. 4.1, Fig. 3). Each
(LayerNorm, dim) gets its own factor, chosen from that dim's RMS on a calibration batch so that the planted dim's
RMS becomes `target_rms` (default 20): values then sit around 20 with peaks near 60, and most positions reach
|x| >= 6, as at 6.7B where 75% of positions are affected (Sec. 4.1: "outliers ... up to magnitude 60").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from bench import BenchError

OUTLIER_MAGNITUDE = 6.0
LAYER_SHARE = 0.25
POSITION_SHARE = 0.06
BULK_RANGE = 3.5
PLANT_TARGET_RMS = 20.0   # all-LN planting: RMS of a planted dim (|x| ~ 20, peaks ~ 60: the paper's 6..60)
MIN_CALIBRATION_RMS = 1e-3   # a dim quieter than this on the calibration batch has no usable scale


@dataclass
class Census:
    source: str
    n_layers: int
    n_positions: int
    n_dims: int
    share_within_bulk: float      # share of all values with |x| <= 3.5
    max_abs: float
    outlier_dims: list[int]       # dimensions meeting both criteria
    layers_affected: float        # share of layers where an outlier dim reaches 6
    positions_affected: float     # share of positions where an outlier dim reaches 6 in some layer

    def row(self) -> dict:
        return {"n_outlier_dims": len(self.outlier_dims), "share_within_3_5": self.share_within_bulk,
                "max_abs_hidden": self.max_abs, "layers_affected": self.layers_affected,
                "positions_affected": self.positions_affected}


def census_from_states(states: list[torch.Tensor], source: str = "hidden") -> Census:
    """states: one (P, D) tensor per layer, the same P positions in every layer."""
    if not states:
        raise BenchError("outlier census needs at least one layer of states")
    X = torch.stack([s.reshape(-1, s.shape[-1]).float() for s in states])  # (L, P, D)
    L, P, D = X.shape
    big = X.abs() >= OUTLIER_MAGNITUDE                                       # (L, P, D)
    layer_share = big.any(dim=1).float().mean(dim=0)                         # (D,)
    pos_share = big.any(dim=0).float().mean(dim=0)                           # (D,)
    dims = torch.nonzero((layer_share >= LAYER_SHARE) & (pos_share >= POSITION_SHARE)).flatten()
    if dims.numel():
        hit = big[:, :, dims]                                                # (L, P, n)
        layers_aff = float(hit.any(dim=2).any(dim=1).float().mean())
        pos_aff = float(hit.any(dim=2).any(dim=0).float().mean())
    else:
        layers_aff = pos_aff = 0.0
    return Census(source=source, n_layers=L, n_positions=P, n_dims=D,
                  share_within_bulk=float((X.abs() <= BULK_RANGE).float().mean()), max_abs=float(X.abs().max()),
                  outlier_dims=[int(d) for d in dims], layers_affected=layers_aff, positions_affected=pos_aff)


def _residual_readers(model: nn.Module, hidden: int) -> list[tuple[str, nn.Module]]:
    """Linear / Conv1D layers whose input has `hidden` features (the residual stream's width), LM head excluded."""
    from transformers.pytorch_utils import Conv1D
    out = []
    for name, m in model.named_modules():
        if name.endswith("lm_head"):
            continue
        if isinstance(m, nn.Linear) and m.in_features == hidden:
            out.append((name, m))
        elif isinstance(m, Conv1D) and m.weight.shape[0] == hidden:
            out.append((name, m))
        elif type(m).__name__ == "Int8Linear" and m.in_features == hidden:
            out.append((name, m))
    return out


@torch.no_grad()
def collect_states(model: nn.Module, batches: list[torch.Tensor], source: str = "hidden") -> list[torch.Tensor]:
    """Per layer, the (P, D) values over all batches. source: hidden | linear_inputs."""
    if source not in ("hidden", "linear_inputs"):
        raise BenchError(f"unknown census source {source!r}; choose hidden or linear_inputs")
    was = model.training
    model.eval()
    per_layer: dict[int, list[torch.Tensor]] = {}
    hooks = []
    if source == "linear_inputs":
        hidden = model.config.hidden_size
        readers = _residual_readers(model, hidden)
        for i, (_, m) in enumerate(readers):
            hooks.append(m.register_forward_hook(
                lambda mod, inp, out, i=i: per_layer.setdefault(i, []).append(inp[0].reshape(-1, inp[0].shape[-1]))))
    try:
        for ids in batches:
            out = model(input_ids=ids, output_hidden_states=(source == "hidden"))
            if source == "hidden":
                for i, h in enumerate(out.hidden_states[1:]):   # block outputs (index 0 = embeddings)
                    per_layer.setdefault(i, []).append(h.reshape(-1, h.shape[-1]))
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    return [torch.cat(per_layer[i]) for i in sorted(per_layer)]


def outlier_census(model: nn.Module, batches: list[torch.Tensor], source: str = "hidden") -> Census:
    return census_from_states(collect_states(model, batches, source), source)


def _gpt2_blocks(model: nn.Module):
    blocks = getattr(getattr(model, "transformer", None), "h", None)
    if blocks is None or not all(hasattr(b, "ln_2") and hasattr(getattr(b, "mlp", None), "c_fc") for b in blocks):
        raise BenchError(f"plant_outliers supports GPT-2-style models (transformer.h[i].ln_2 -> mlp.c_fc), "
                         f"got {type(model).__name__}")
    return blocks


def _refuse_shared(model: nn.Module, tensors: list[torch.Tensor]) -> None:
    """BenchError if a tensor to be scaled in place is also reachable under another name (tied weights): the
    scaling would apply to every user of it, twice when two planted layers share it."""
    names: dict[int, list[str]] = {}
    for n, p in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(n)
    for t in tensors:
        if len(names.get(id(t), [])) > 1:
            raise BenchError(f"plant_outliers: {names[id(t)][0]} is shared with {', '.join(names[id(t)][1:])} "
                             f"(tied weights); scaling it in place would change every user")


@torch.no_grad()
def plant_outliers(model: nn.Module, dims: list[int], scale: float, layers: list[int] | None = None) -> nn.Module:
    """Multiply dimensions `dims` of the MLP input (ln_2's weight and bias) by `scale` in the given blocks
    (all by default) and divide the same input rows of mlp.c_fc by `scale`: the FP32 function is unchanged
    (up to rounding) while the values entering c_fc are `scale` times larger. In place; returns the model."""
    blocks = _gpt2_blocks(model)
    hidden = blocks[0].ln_2.weight.shape[0]
    if not dims or any(not (0 <= d < hidden) for d in dims) or len(set(dims)) != len(dims):
        raise BenchError(f"plant_outliers needs distinct dims in [0, {hidden}), got {dims}")
    if not (scale > 0 and scale != float("inf")):
        raise BenchError(f"plant_outliers needs a finite scale > 0, got {scale}")
    layers = list(range(len(blocks))) if layers is None else list(layers)
    if any(not (0 <= i < len(blocks)) for i in layers):
        raise BenchError(f"plant_outliers: layers must be in [0, {len(blocks)}), got {layers}")
    _refuse_shared(model, [t for i in layers for t in (blocks[i].ln_2.weight, blocks[i].ln_2.bias,
                                                        blocks[i].mlp.c_fc.weight) if t is not None])
    idx = torch.tensor(dims)
    for i in layers:
        _scale_pair(blocks[i].ln_2, blocks[i].mlp.c_fc, idx, scale)
    return model


def _scale_pair(ln: nn.LayerNorm, lin: nn.Module, idx: torch.Tensor, scale) -> None:
    """Multiply LayerNorm output dims `idx` by `scale` (a float, or a tensor (len(idx),)) and divide the matching
    input rows of the Linear / Conv1D reading it: x W is unchanged up to rounding. In place."""
    ln.weight[idx] *= scale
    if ln.bias is not None:
        ln.bias[idx] *= scale
    if isinstance(lin, nn.Linear):
        lin.weight[:, idx] /= scale                                  # (out, in): columns are inputs
    else:
        lin.weight[idx, :] /= scale if not torch.is_tensor(scale) else scale[:, None]   # Conv1D: (in, out)


def all_ln_pairs(model: nn.Module) -> list[tuple[str, nn.LayerNorm, nn.Module]]:
    """(LayerNorm name, LayerNorm, the Linear it feeds) for every GPT-2 block: ln_1 -> attn.c_attn, ln_2 -> mlp.c_fc."""
    blocks = _gpt2_blocks(model)
    if not all(hasattr(b, "ln_1") and hasattr(getattr(b, "attn", None), "c_attn") for b in blocks):
        raise BenchError(f"all-LN planting needs GPT-2 blocks (ln_1 -> attn.c_attn), got {type(model).__name__}")
    return [(f"transformer.h.{i}.{ln}", getattr(b, ln), lin) for i, b in enumerate(blocks)
            for ln, lin in (("ln_1", b.attn.c_attn), ("ln_2", b.mlp.c_fc))]


@torch.no_grad()
def _dim_rms(model: nn.Module, norms: list[nn.Module], ids: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """RMS over the positions of `ids` (B, T) of dims `idx` of each LayerNorm's output -> (len(norms), len(idx))."""
    got: list[torch.Tensor] = [None] * len(norms)
    hooks = [n.register_forward_hook(lambda mod, i, o, k=k: got.__setitem__(k, o[..., idx].reshape(-1, len(idx))))
             for k, n in enumerate(norms)]
    was = model.training
    model.eval()
    try:
        model(input_ids=ids)
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    return torch.stack([g.double().pow(2).mean(0).sqrt() for g in got]).float()


@torch.no_grad()
def plant_outliers_all_ln(model: nn.Module, dims: list[int], calibration_ids: torch.Tensor,
                          target_rms: float = PLANT_TARGET_RMS) -> tuple[nn.Module, torch.Tensor]:
    """Plant outlier dims `dims` on every LayerNorm output that feeds a Linear (`all_ln_pairs`), compensated in
    that Linear's input rows: the FP32 function is unchanged (up to rounding). The factor of (LayerNorm l, dim d)
    is target_rms / RMS(x_ld) on `calibration_ids` (B, T), all measured on the model before any change (the
    function, hence every LayerNorm's input, is the same after planting). In place; returns (model, the factors
    (2 * n_layer, len(dims)), in all_ln_pairs order): measured values, for a row's info, not its identity."""
    pairs = all_ln_pairs(model)
    hidden = pairs[0][1].weight.shape[0]
    if not dims or any(not (0 <= d < hidden) for d in dims) or len(set(dims)) != len(dims):
        raise BenchError(f"plant_outliers_all_ln needs distinct dims in [0, {hidden}), got {dims}")
    if not (0 < target_rms < float("inf")):
        raise BenchError(f"plant_outliers_all_ln needs a finite target_rms > 0, got {target_rms}")
    _refuse_shared(model, [t for _, ln, lin in pairs for t in (ln.weight, ln.bias, lin.weight) if t is not None])
    idx = torch.tensor(dims)
    rms = _dim_rms(model, [ln for _, ln, _ in pairs], calibration_ids, idx)          # (2L, n)
    if bool((rms < MIN_CALIBRATION_RMS).any()):
        k, j = (int(v) for v in torch.nonzero(rms < MIN_CALIBRATION_RMS)[0])
        raise BenchError(f"plant_outliers_all_ln: dim {dims[j]} of {pairs[k][0]} has RMS {float(rms[k, j]):.2g} on "
                         f"the calibration batch (< {MIN_CALIBRATION_RMS:g}): no usable factor; plant other dims")
    scales = target_rms / rms
    for (_, ln, lin), s in zip(pairs, scales):
        _scale_pair(ln, lin, idx, s)
    return model, scales
