"""`Int8Linear`: a drop-in int8 replacement for nn.Linear (and GPT-2's Conv1D), and `quantize_model`.

Weights are stored as a torch.int8 tensor (out, in) plus float32 scales, so weight memory really drops;
activations are quantized on the fly each call, and the int8 x int8 product accumulates in int32
(`bench.numerics.quant.int8_matmul`). Methods (see `quant.py` for the formulas):

| method     | X (activations)                  | W (weights)               |
|------------|----------------------------------|---------------------------|
| absmax     | absmax per tensor                | absmax per tensor         |
| zeropoint  | asymmetric zero-point per tensor | zero-point per tensor     |
| rowwise    | absmax per row (token)           | absmax per tensor         |
| vectorwise | absmax per row (token)           | absmax per output row     |
| llm_int8   | vector-wise, plus: columns of X with any |x| >= threshold are multiplied in float |

LLM.int8() (Dettmers et al. 2022, arXiv 2208.07339) as in bitsandbytes' `Linear8bitLt(threshold=6.0,
has_fp16_weights=False)`: only the int8 weight is kept, so the outlier columns multiply the
*dequantised* weight columns. One difference, on purpose: bitsandbytes takes each row's absmax with
only the outlier *entries* zeroed; here the int8 part's row scale comes from the non-outlier columns
(the decomposition of the paper's Eq. 7). The columns chosen are identical.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from bench import BenchError
from bench.values import OUTLIER_THRESHOLD, check_value
from bench.numerics.quant import (LLM_INT8_THRESHOLD, QMAX, _nonzero, absmax_quantize, int8_matmul, outlier_columns,
                                  zeropoint_quantize)

METHODS = ("absmax", "zeropoint", "rowwise", "vectorwise", "llm_int8")
NON_FINITE = "Int8Linear got NaN/inf in its input; int8 quantization of non-finite values is undefined"


def _conv1d_type():
    from transformers.pytorch_utils import Conv1D
    return Conv1D


def _check_method(method: str, threshold: float) -> None:
    if method not in METHODS:
        raise BenchError(f"unknown int8 method {method!r}; choose one of {', '.join(METHODS)}")
    check_value("int8 threshold", threshold, OUTLIER_THRESHOLD)


class Int8Linear(nn.Module):
    """y = x W^T + b with W in int8. Build it with `Int8Linear.from_float(linear, method=..., threshold=LLM_INT8_THRESHOLD)`."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, method: str = "llm_int8",
                 threshold: float = LLM_INT8_THRESHOLD):
        super().__init__()
        _check_method(method, threshold)
        self.in_features, self.out_features = in_features, out_features
        self.method, self.threshold = method, float(threshold)
        per_row = method in ("vectorwise", "llm_int8")
        self.register_buffer("weight_q", torch.zeros(out_features, in_features, dtype=torch.int8))
        # absmax methods: max|W| per output row (out, 1) or per tensor (1, 1); zeropoint: 255/(max-min)
        self.register_buffer("weight_scale", torch.ones(out_features if per_row else 1, 1))
        if method == "zeropoint":
            self.register_buffer("weight_zero", torch.zeros(1, 1, dtype=torch.int32))
            self.register_buffer("weight_q_rowsum", torch.zeros(1, out_features, dtype=torch.int64))
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)
        self.last_outlier_cols: torch.Tensor | None = None  # llm_int8: columns taken out on the last call

    @classmethod
    def from_float(cls, module: nn.Module, method: str = "llm_int8", threshold: float = LLM_INT8_THRESHOLD) -> "Int8Linear":
        """Quantize an nn.Linear (weight (out, in)) or a transformers Conv1D (weight (in, out))."""
        _check_method(method, threshold)
        conv1d = _conv1d_type()
        if not isinstance(module, (nn.Linear, conv1d)):
            raise BenchError(f"Int8Linear.from_float takes nn.Linear or transformers Conv1D, got {type(module).__name__}")
        w = module.weight.detach()
        if w.dim() != 2:
            raise BenchError(f"Int8Linear needs a 2-D weight, got shape {tuple(w.shape)}")
        if w.device.type == "meta":
            raise BenchError("Int8Linear.from_float needs real weights, got a meta tensor")
        if not torch.isfinite(w).all():
            raise BenchError(f"cannot quantize a weight with NaN/inf values (shape {tuple(w.shape)})")
        if isinstance(module, conv1d):
            w = w.t()  # Conv1D computes x @ W with W (in, out)
        out_f, in_f = w.shape
        layer = cls(in_f, out_f, bias=module.bias is not None, method=method, threshold=threshold)
        w = w.float()
        if method == "zeropoint":
            q, scale, zero = zeropoint_quantize(w)
            layer.weight_zero.copy_(zero.reshape(1, 1))
            layer.weight_q_rowsum.copy_(q.long().sum(dim=1).reshape(1, -1))
        else:
            q, scale = absmax_quantize(w, dim=-1 if method in ("vectorwise", "llm_int8") else None)
        layer.weight_q.copy_(q)
        layer.weight_scale.copy_(scale.reshape(-1, 1))
        if module.bias is not None:
            layer.bias.copy_(module.bias.detach().float())
        return layer.to(module.weight.device)

    def dequantized_weight(self) -> torch.Tensor:
        """W as the int8 codes represent it, (out, in) float32."""
        if self.method == "zeropoint":
            return (self.weight_q.float() - self.weight_zero.float()) / self.weight_scale
        return self.weight_q.float() * (self.weight_scale / QMAX)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise BenchError(f"Int8Linear expects inputs with {self.in_features} features, got shape {tuple(x.shape)}")
        shape = x.shape
        x2 = x.reshape(-1, self.in_features).float()  # (M, K)
        m = self.method
        if m in ("vectorwise", "llm_int8"):   # checks finiteness on its own column maxima: one pass fewer
            out = self._vectorwise(x2, self.threshold if m == "llm_int8" else 0.0)
            if self.bias is not None:
                out.add_(self.bias)
            return out.reshape(*shape[:-1], self.out_features).to(x.dtype)
        if not torch.isfinite(x).all():
            raise BenchError(NON_FINITE)
        if m == "zeropoint":
            out = self._zeropoint(x2)
        elif m == "absmax":
            xq, ax = absmax_quantize(x2)
            out = int8_matmul(xq, self.weight_q).float() * (ax * self.weight_scale.reshape(()) / QMAX**2)
        else:  # rowwise
            xq, ax = absmax_quantize(x2, dim=-1)                            # ax (M, 1)
            out = int8_matmul(xq, self.weight_q).float() * (ax * (self.weight_scale.reshape(()) / QMAX**2))
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*shape[:-1], self.out_features).to(x.dtype)

    def _vectorwise(self, x: torch.Tensor, threshold: float) -> torch.Tensor:
        """x (M, K) float32 -> (M, N). The same numbers as outlier_columns + absmax_quantize(dim=-1) + int8_matmul
        on x with the outlier columns zeroed, with one |x| and one scaled copy of x instead of a pass per step
        (an input-sized pass costs as much as a few percent of the int8 product at M = 512)."""
        a = x.abs()                                                          # (M, K)
        col_max = a.amax(dim=0)                                              # (K,); NaN / inf propagate here
        if not torch.isfinite(col_max).all():
            raise BenchError(NON_FINITE)
        cols = outlier_columns(x, threshold, col_absmax=col_max)            # (n_out,) sorted
        self.last_outlier_cols = cols if self.method == "llm_int8" else None
        if cols.numel():
            a[:, cols] = 0.0
        ax = a.amax(dim=-1, keepdim=True)                                    # (M, 1) row absmax, outliers out
        del a
        factor = QMAX / _nonzero(ax)                                         # as absmax_quantize: 127 / absmax
        if torch.isfinite(factor).all():
            xq = x * factor
            if cols.numel():
                xq[:, cols] = 0.0
            xq = xq.round_().clamp_(-QMAX, QMAX).to(torch.int8)             # (M, K)
        else:    # a row absmax below ~3.7e-37: absmax_quantize's float64 path
            x_int = x.clone()
            x_int[:, cols] = 0.0
            xq, _ = absmax_quantize(x_int, dim=-1)
        out = int8_matmul(xq, self.weight_q).float()                        # (M, N)
        out.mul_(ax * (self.weight_scale.t() / QMAX**2))
        if cols.numel():
            w_cols = self.weight_q[:, cols].float() * (self.weight_scale / QMAX)  # (N, n_out), dequantised
            out.addmm_(x[:, cols], w_cols.t())
        return out

    def _zeropoint(self, x: torch.Tensor) -> torch.Tensor:
        # (qx - zx)(qw - zw)^T = qx qw^T - zw rowsum(qx) - zx rowsum(qw) + K zx zw, all in integers
        qx, sx, zx = zeropoint_quantize(x)
        zx, zw = zx.long().reshape(()), self.weight_zero.long().reshape(())
        acc = int8_matmul(qx, self.weight_q).long()
        acc = acc - zw * qx.long().sum(dim=1, keepdim=True) - zx * self.weight_q_rowsum + self.in_features * zx * zw
        return acc.double().div(sx.double() * self.weight_scale.double().reshape(())).float()

    def extra_repr(self) -> str:
        t = f", threshold={self.threshold:g}" if self.method == "llm_int8" else ""
        return f"in_features={self.in_features}, out_features={self.out_features}, method={self.method}{t}"


def quantize_model(model: nn.Module, method: str = "llm_int8", threshold: float = LLM_INT8_THRESHOLD,
                   skip: tuple[str, ...] = ("lm_head",)) -> nn.Module:
    """Replace every nn.Linear / Conv1D of `model` in place by an Int8Linear (like transformers'
    load_in_8bit, which keeps the LM head in float: `skip` names modules by their last name or full
    path). Returns the model. Everything is validated before anything is modified."""
    _check_method(method, threshold)
    conv1d = _conv1d_type()
    targets = [(n, m) for n, m in model.named_modules()
               if isinstance(m, (nn.Linear, conv1d)) and not any(n == s or n.endswith("." + s) for s in skip)]
    if not targets:
        raise BenchError(f"quantize_model found no nn.Linear or Conv1D layers to quantize in {type(model).__name__}")
    for name, m in targets:
        if m.weight.dim() != 2 or not torch.isfinite(m.weight).all():
            raise BenchError(f"cannot quantize {name}: weight must be 2-D and finite")
    for name, m in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, Int8Linear.from_float(m, method=method, threshold=threshold))
    return model


def storage_bytes(model: nn.Module) -> dict:
    """Bytes actually held by the model's tensors (parameters and buffers, tied ones once), split
    into int8 tensors and the rest."""
    tensors = {}
    for t in list(model.parameters()) + list(model.buffers()):
        tensors[t.data_ptr() if t.device.type != "meta" else id(t)] = t
    int8 = sum(t.numel() * t.element_size() for t in tensors.values() if t.dtype == torch.int8)
    rest = sum(t.numel() * t.element_size() for t in tensors.values() if t.dtype != torch.int8)
    return {"int8_bytes": int8, "other_bytes": rest, "total_bytes": int8 + rest}
