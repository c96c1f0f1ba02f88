"""Int8 quantizers and the exact int8 matrix product (claims Q1-Q4), pure torch.

Names used throughout:
- fixed-range symmetric: q = round(127 * x / r) for a range [-r, r] fixed in advance. This is the
  lecture's "zero-point" example (0.3 in [-1, 1] -> 38 -> 0.2992); it is NOT zero-point quantization.
- absmax (symmetric): q = round(127 * x / max|x|); the HF blog's "factor" is 127 / max|x|.
- zero-point (asymmetric): scale = 255 / (max - min), zero = round(-min * scale) - 128, q = round(x * scale)
  + zero in [-128, 127]; x ~ (q - zero) / scale. The range is widened to include 0 so that 0 is exact.
- per tensor / per row: one statistic for the whole tensor, or one per row (`dim=-1` reduces along
  the last axis). Vector-wise (Dettmers et al. 2022, Sec. 3.1) = per row of X and per output row of W,
  dequantised by the outer product of the two absmax vectors / 127^2.
Int8 x int8 products accumulate in int32 exactly (`int8_matmul`).
"""

from __future__ import annotations

import functools

import torch

from bench import BenchError
from bench.values import OUTLIER_THRESHOLD, check_value

LLM_INT8_THRESHOLD = 6.0   # LLM.int8()'s outlier threshold: |x| >= 6 (Dettmers et al. 2022, Sec. 3.2; bitsandbytes' default)
QMAX = 127          # symmetric int8 range [-127, 127] (as bitsandbytes: -128 is never produced)


def check_finite(x: torch.Tensor, where: str) -> None:
    """BenchError unless every value of `x` is finite: int8 codes of NaN/inf are undefined, and one inf would
    turn a whole row's scale into inf/NaN. Every quantizer here (and Int8Linear) calls it on its input."""
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        n = int((~torch.isfinite(x)).sum())
        raise BenchError(f"{where}: input holds {n} NaN/inf value(s) (shape {tuple(x.shape)}); int8 quantization "
                         f"of non-finite values is undefined")


def _nonzero(a: torch.Tensor) -> torch.Tensor:
    """`a` with zeros replaced by 1: an all-zero row divides by 1 (codes 0) while the statistic stored stays 0,
    so quantising and dequantising use the same value. No other floor: a tiny but non-zero row keeps its own
    scale (a floor such as 1e-12 used on one side only dequantised 1e-13 to 1.02e-14)."""
    return torch.where(a > 0, a, torch.ones_like(a))


# ---------------------------------------------------------------- fixed-range symmetric (the lecture)
def fixed_range_quantize(x: torch.Tensor, r: float = 1.0) -> torch.Tensor:
    if not (0 < r < float("inf")):
        raise BenchError(f"fixed-range quantization needs a finite range r > 0, got {r}")
    check_finite(x, "fixed_range_quantize")
    return torch.round(x.double() * (QMAX / r)).clamp(-QMAX, QMAX).to(torch.int8)


def fixed_range_dequantize(q: torch.Tensor, r: float = 1.0) -> torch.Tensor:
    return q.double() * (r / QMAX)


# ---------------------------------------------------------------- absmax (symmetric)
def absmax(x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """max|x| over the tensor (shape ()) or along `dim` (kept as size 1), as float32."""
    check_finite(x, "absmax")
    a = x.abs().amax() if dim is None else x.abs().amax(dim=dim, keepdim=True)
    return a.float()


def absmax_quantize(x: torch.Tensor, dim: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (q int8, absmax float32). q = round(x * 127 / absmax); an all-zero row gives codes 0 and absmax 0.
    Every value dequantises within absmax / 254 of itself. BenchError on NaN/inf."""
    check_finite(x, "absmax_quantize")
    a = absmax(x, dim)
    factor = QMAX / _nonzero(a)
    if bool(torch.isfinite(factor).all()):
        q = torch.round(x.float() * factor)
    else:  # absmax below 127 / fp32 max (~3.7e-37): 127 / absmax only exists in float64
        q = torch.round(x.double() * (QMAX / _nonzero(a).double()))
    return q.clamp(-QMAX, QMAX).to(torch.int8), a


def absmax_dequantize(q: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    check_finite(a, "absmax_dequantize (absmax)")
    return q.float() * (a / QMAX)


# ---------------------------------------------------------------- zero-point (asymmetric)
def zeropoint_quantize(x: torch.Tensor, dim: int | None = None):
    """-> (q int8, scale float32, zero int32), x ~ (q - zero) / scale, 255 levels over [min, max]; an all-zero
    row gets scale 1 (codes = zero). The scale returned is the one used. BenchError on NaN/inf."""
    check_finite(x, "zeropoint_quantize")
    x = x.float()
    lo = (x.amin() if dim is None else x.amin(dim=dim, keepdim=True)).clamp(max=0.0)
    hi = (x.amax() if dim is None else x.amax(dim=dim, keepdim=True)).clamp(min=0.0)
    # float64, then capped at fp32's max: a range below ~7.5e-37 keeps a finite scale (fewer levels, still exact
    # round trips of the codes); every larger range gets exactly fp32's 255 / range
    scale = (255.0 / _nonzero(hi - lo).double()).clamp(max=torch.finfo(torch.float32).max).float()
    zero = (torch.round(-lo * scale) - 128).clamp(-128, 127)
    q = (torch.round(x * scale) + zero).clamp(-128, 127).to(torch.int8)
    return q, scale, zero.to(torch.int32)


def zeropoint_dequantize(q: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
    check_finite(scale, "zeropoint_dequantize (scale)")
    return (q.float() - zero.float()) / scale


# ---------------------------------------------------------------- exact int8 x int8 -> int32
_CHUNK = 1024  # 1024 * 127 * 128 < 2^24: every partial sum is an integer fp32 holds exactly


def _int8_matmul_float(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact emulation: fp32 products over K-chunks small enough that no partial sum is rounded."""
    M, K = a.shape
    out = torch.zeros(M, b.shape[0], dtype=torch.int32, device=a.device)
    for k in range(0, K, _CHUNK):
        part = a[:, k:k + _CHUNK].float() @ b[:, k:k + _CHUNK].float().t()
        out += part.to(torch.int32)
    return out


@functools.lru_cache(maxsize=8)
def _int_mm_works(device_type: str) -> bool:
    """torch._int_mm exists and gives the exact answer on this device (checked once, on a tiny case
    with extreme values where a saturating int16 path would be wrong)."""
    if not hasattr(torch, "_int_mm"):
        return False
    try:
        a = torch.full((32, 64), -128, dtype=torch.int8, device=device_type)
        b = torch.full((64, 32), 127, dtype=torch.int8, device=device_type)
        return bool((torch._int_mm(a, b) == -128 * 127 * 64).all())
    except (RuntimeError, NotImplementedError):
        return False


@functools.lru_cache(maxsize=8)
def _int_mm_preferred(device_type: str) -> bool:
    """auto: use torch._int_mm where it is exact and not slower than the float emulation (on some CPUs
    torch falls back to a slow scalar int8 kernel). Timed once per process on a 32 x 1024 x 512 product;
    both paths give identical results, so the choice never changes a number, only the speed."""
    import time
    if not _int_mm_works(device_type):
        return False
    if device_type != "cpu":
        return True
    a = torch.randint(-127, 128, (32, 1024), dtype=torch.int8)
    b = torch.randint(-127, 128, (512, 1024), dtype=torch.int8)

    def best(f):
        f()
        t = []
        for _ in range(3):
            t0 = time.perf_counter()
            f()
            t.append(time.perf_counter() - t0)
        return min(t)
    return best(lambda: torch._int_mm(a, b.t())) <= best(lambda: _int8_matmul_float(a, b))


def int8_matmul(a: torch.Tensor, b: torch.Tensor, impl: str = "auto") -> torch.Tensor:
    """a (M, K) int8 @ b (N, K) int8 ^T -> (M, N) int32, exact. impl: auto | int_mm | float."""
    if a.dtype != torch.int8 or b.dtype != torch.int8:
        raise BenchError(f"int8_matmul needs int8 operands, got {a.dtype} and {b.dtype}")
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise BenchError(f"int8_matmul needs (M, K) and (N, K), got {tuple(a.shape)} and {tuple(b.shape)}")
    if impl not in ("auto", "int_mm", "float"):
        raise BenchError(f"unknown int8_matmul impl {impl!r}; choose auto, int_mm or float")
    if impl == "float" or (impl == "auto" and not _int_mm_preferred(a.device.type)):
        return _int8_matmul_float(a, b)
    try:
        return torch._int_mm(a.contiguous(), b.t())
    except RuntimeError:
        if impl == "int_mm":
            raise
        return _int8_matmul_float(a, b)  # e.g. CUDA's shape limits (M > 16, K and N multiples of 8)


# ---------------------------------------------------------------- quantized matmuls (functional form)
def absmax_matmul(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Per-tensor absmax: x (M, K), w (N, K) -> x @ w.T (M, N). BenchError on NaN/inf in x or w."""
    check_finite(x, "absmax_matmul (x)")
    check_finite(w, "absmax_matmul (w)")
    xq, ax = absmax_quantize(x)
    wq, aw = absmax_quantize(w)
    return int8_matmul(xq, wq).float() * (ax * aw / QMAX**2)


def vectorwise_matmul(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Vector-wise: absmax per row of x (M, 1) and per output row of w (N, 1); the int32 product is
    dequantised by the outer product of the two absmax vectors / 127^2. BenchError on NaN/inf in x or w."""
    check_finite(x, "vectorwise_matmul (x)")
    check_finite(w, "vectorwise_matmul (w)")
    xq, ax = absmax_quantize(x, dim=-1)
    wq, aw = absmax_quantize(w, dim=-1)
    return int8_matmul(xq, wq).float() * (ax * aw.t() / QMAX**2)


def outlier_columns(x: torch.Tensor, threshold: float, col_absmax: torch.Tensor | None = None) -> torch.Tensor:
    """Indices of feature columns of x (M, K) with any |x| >= threshold (LongTensor, sorted).
    threshold 0 means no decomposition (as bitsandbytes). BenchError on NaN/inf in x (NaN would never count
    as an outlier, inf always would). col_absmax: x.abs().amax(dim=0) (K,) when the caller has it already
    (Int8Linear), then x is not read again and finiteness is the caller's to check."""
    check_value("int8 threshold", threshold, OUTLIER_THRESHOLD)
    if col_absmax is None:
        check_finite(x, "outlier_columns")
    if threshold == 0:
        return torch.empty(0, dtype=torch.long, device=x.device)
    return torch.nonzero((x.abs().amax(dim=0) if col_absmax is None else col_absmax) >= threshold).flatten()


def llm_int8_matmul(x: torch.Tensor, w: torch.Tensor, threshold: float = LLM_INT8_THRESHOLD) -> tuple[torch.Tensor, torch.Tensor]:
    """LLM.int8() (Dettmers et al. 2022, Eq. 7): columns of x with an outlier are multiplied in
    float, the rest vector-wise in int8. -> (x @ w.T approx (M, N), outlier column indices).
    BenchError on NaN/inf in x or w."""
    check_finite(x, "llm_int8_matmul (x)")
    check_finite(w, "llm_int8_matmul (w)")
    cols = outlier_columns(x, threshold)
    keep = torch.ones(x.shape[1], dtype=torch.bool, device=x.device)
    keep[cols] = False
    out = vectorwise_matmul(x * keep, w * keep)
    if cols.numel():
        out = out + x[:, cols].float() @ w[:, cols].float().t()
    return out, cols
