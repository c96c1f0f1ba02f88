"""`KeepColumnsLinear`: int8 for every input feature but a FIXED set, which stays in 16-bit float (claim Q5).

LLM.int8() picks its float columns per call, by magnitude (|x| >= 6 anywhere in the batch; `int8_linear`). The
outlier-feature story (Dettmers et al. 2022, arXiv 2208.07339, Sec. 4) says a few systematic feature dimensions
carry the large values; if so, keeping only those dimensions in float, chosen once from a census, should recover
what plain int8 loses. This layer tests that: with `cols` the census's outlier dimensions,

    y = Q(x[:, rest]) Q(W[:, rest])^T  +  fp16(x[:, cols]) fp16(W[:, cols])^T  (+ b)

where Q is int8 absmax, per tensor (`base="absmax"`) or vector-wise (`base="vectorwise"`: per row of x, per output
row of W; Sec. 3.1), with the scales taken over the int8 part only, and the kept part is rounded to fp16 and
multiplied in fp32. With no columns kept it equals `Int8Linear` of the same base method.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from bench import BenchError
from bench.numerics.quant import QMAX, absmax_quantize, int8_matmul

BASES = ("absmax", "vectorwise")


class KeepColumnsLinear(nn.Module):
    """y = x W^T + b with W's columns `cols` in fp16 and the rest in int8. Build with `from_float`."""

    def __init__(self, linear: nn.Linear, cols, base: str = "vectorwise"):
        super().__init__()
        if base not in BASES:
            raise BenchError(f"unknown base method {base!r} for KeepColumnsLinear; choose one of {', '.join(BASES)}")
        w = linear.weight.detach().float()                                   # (N, K)
        n, k = w.shape
        cols = torch.as_tensor(sorted(set(int(c) for c in cols)), dtype=torch.long)
        if cols.numel() and (int(cols.min()) < 0 or int(cols.max()) >= k):
            raise BenchError(f"KeepColumnsLinear: columns must be in [0, {k}), got {cols.tolist()}")
        if not torch.isfinite(w).all():
            raise BenchError(f"cannot quantize a weight with NaN/inf values (shape {tuple(w.shape)})")
        self.in_features, self.out_features, self.base = k, n, base
        self.register_buffer("cols", cols)
        rest = torch.ones(k, dtype=torch.bool)
        rest[cols] = False
        self.register_buffer("rest", rest)
        q, scale = absmax_quantize(w * rest, dim=-1 if base == "vectorwise" else None)   # kept columns zeroed
        self.register_buffer("weight_q", q)                                  # (N, K) int8, zeros at kept columns
        self.register_buffer("weight_scale", scale.reshape(-1, 1))          # (N, 1) or (1, 1)
        self.register_buffer("weight_keep", w[:, cols].half())              # (N, len(cols)) fp16
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float().clone())

    @classmethod
    def from_float(cls, linear: nn.Module, cols, base: str = "vectorwise") -> "KeepColumnsLinear":
        if not isinstance(linear, nn.Linear):
            raise BenchError(f"KeepColumnsLinear.from_float takes nn.Linear, got {type(linear).__name__}")
        return cls(linear, cols, base)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise BenchError(f"KeepColumnsLinear expects {self.in_features} features, got shape {tuple(x.shape)}")
        shape = x.shape
        x2 = x.reshape(-1, self.in_features).float()                        # (M, K)
        xq, ax = absmax_quantize(x2 * self.rest, dim=-1 if self.base == "vectorwise" else None)
        if self.base == "vectorwise":
            out = int8_matmul(xq, self.weight_q).float() * (ax * (self.weight_scale.t() / QMAX**2))    # (M, N)
        else:
            out = int8_matmul(xq, self.weight_q).float() * (ax * self.weight_scale.reshape(()) / QMAX**2)
        if self.cols.numel():
            out = out.addmm(x2[:, self.cols].half().float(), self.weight_keep.float().t())
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, base={self.base}, " \
               f"kept={self.cols.numel()}"


def keep_columns_model(model: nn.Module, cols_for, base: str = "vectorwise",
                       skip: tuple[str, ...] = ("lm_head",)) -> nn.Module:
    """Replace every nn.Linear of `model` (but `skip`, by last or full name) in place by a KeepColumnsLinear whose
    kept columns are `cols_for(name)` (a list of input-feature indices, possibly empty). Returns the model."""
    targets = [(n, m) for n, m in model.named_modules()
               if isinstance(m, nn.Linear) and not any(n == s or n.endswith("." + s) for s in skip)]
    if not targets:
        raise BenchError(f"keep_columns_model found no nn.Linear to quantize in {type(model).__name__}")
    new = [(n, KeepColumnsLinear.from_float(m, cols_for(n), base)) for n, m in targets]
    for name, layer in new:
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, layer)
    return model
