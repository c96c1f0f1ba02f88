"""Q2 and Q4 on a real decoder, and Q5's "keep only the outlier dimensions in float".

Every nn.Linear of the decoder blocks (q/k/v/o, gate/up/down: 7 per layer) is replaced; the LM head (tied to the
token embeddings) and the embeddings stay in fp32, as transformers' load_in_8bit leaves the head. Variants:
- absmax, zeropoint, vectorwise, llm_int8 (threshold 6): bench.numerics.int8_linear (ours);
- llm_int8 at each swept threshold: the same layer, and the share of input columns it multiplied in float;
- bnb_llm_int8: bitsandbytes' Linear8bitLt(threshold 6, has_fp16_weights=False, eval mode) on the weights rounded
  to fp16 (bitsandbytes holds them so): the reference for our LLM.int8();
- keep_absmax, keep_vectorwise: the census's outlier dimensions of each Linear's input kept in fp16, the rest int8
  (bench.numerics.keep_columns).
Per-layer parity: on `parity_chunks` chunks, every Linear's own input (read in the fp32 model) goes through our
layer and bitsandbytes' built from the same fp16-rounded weight: relative errors to the fp32 product, their
difference, and whether both took the same outlier columns.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch
from torch import nn

from bench.numerics.int8_linear import Int8Linear, quantize_model
from bench.numerics.keep_columns import keep_columns_model
from bench.numerics.quant import LLM_INT8_THRESHOLD
from reproductions.decoder.census import input_of
from reproductions.int8 import bnb_layer, bnb_outlier_cols, quiet_bnb

SKIP = ("lm_head",)


def targets(model) -> list[tuple[str, nn.Linear]]:
    """The Linears that every variant quantizes: all but the LM head."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear) and not n.endswith("lm_head")]


def ours(model, method: str, threshold: float = LLM_INT8_THRESHOLD):
    return quantize_model(copy.deepcopy(model), method, threshold, skip=SKIP)


def bnb_model(model):
    """A copy with every target Linear as bitsandbytes' LLM.int8() layer, weights rounded through fp16 first."""
    m = copy.deepcopy(model)
    with quiet_bnb():
        for name, lin in targets(m):
            with torch.no_grad():
                lin.weight.copy_(lin.weight.half().float())
            parent, _, child = name.rpartition(".")
            setattr(m.get_submodule(parent), child, bnb_layer(lin, LLM_INT8_THRESHOLD))
    return m


def keep_model(model, dims: dict[str, list[int]], base: str):
    """A copy whose Linears keep `dims[input kind]` of their input in fp16 and quantize the rest (`base`)."""
    return keep_columns_model(copy.deepcopy(model), lambda name: dims.get(input_of(name)[1], []), base, skip=SKIP)


class ColumnShare:
    """Forward hooks on a model's LLM.int8() layers: the mean over calls of the share of input columns that went
    through the float path."""

    def __init__(self, model):
        self.shares: list[float] = []
        self.hooks = [m.register_forward_hook(self._hook) for m in model.modules()
                      if isinstance(m, Int8Linear) and m.method == "llm_int8"]

    def _hook(self, mod, inp, out):
        self.shares.append(mod.last_outlier_cols.numel() / mod.in_features)

    def close(self) -> float:
        for h in self.hooks:
            h.remove()
        return float(np.mean(self.shares)) if self.shares else float("nan")


def _rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    return float((a - ref).norm() / ref.norm().clamp_min(1e-30))


@torch.no_grad()
def layer_parity(model, ids: torch.Tensor) -> pd.DataFrame:
    """One row per target Linear: ours' and bitsandbytes' relative error to the fp32 product on the layer's own
    input (fp16-rounded weight for all three), their relative difference, outlier columns of each."""
    rows = []

    def hook(name):
        def run(mod, inp, out):
            x = inp[0].reshape(-1, mod.in_features).float()                # (M, K)
            lin = nn.Linear(mod.in_features, mod.out_features, bias=mod.bias is not None)
            lin.load_state_dict({k: v.half().float() for k, v in mod.state_dict().items()})
            ref = nn.functional.linear(x.double(), lin.weight.double(),
                                       None if lin.bias is None else lin.bias.double()).float()
            mine = Int8Linear.from_float(lin, "llm_int8", LLM_INT8_THRESHOLD)
            y_ours = mine(x)
            with quiet_bnb():
                theirs = bnb_layer(lin, LLM_INT8_THRESHOLD)
                y_bnb = theirs(x).float()
            c_ours, c_bnb = set(mine.last_outlier_cols.tolist()), set(bnb_outlier_cols(theirs).tolist())
            layer, kind = input_of(name)
            rows.append({"linear": name, "layer": layer, "input": kind, "rel_err_ours": _rel(y_ours, ref),
                         "rel_err_bnb": _rel(y_bnb, ref), "rel_diff_ours_bnb": _rel(y_ours, y_bnb),
                         "outlier_cols_ours": len(c_ours), "outlier_cols_bnb": len(c_bnb),
                         "outlier_cols_match": int(c_ours == c_bnb)})
        return run

    hooks = [m.register_forward_hook(hook(n)) for n, m in targets(model)]
    try:
        model(input_ids=ids)
    finally:
        for h in hooks:
            h.remove()
    return pd.DataFrame(rows)
