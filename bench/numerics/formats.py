"""Floating-point formats from their bit layouts (claim M1).

A binary float with e exponent bits and m significand (fraction) bits has bias 2^(e-1) - 1 and
- largest finite value  (2 - 2^-m) * 2^bias
- smallest normal       2^(1 - bias)
- smallest subnormal    2^(1 - bias - m)
- machine epsilon       2^-m  (the gap between 1.0 and the next float)
Everything here is computed from (e, m) alone and then checked against `torch.finfo`; TF32 has no
torch dtype, so its row comes from the layout only. IEEE 754-2019; TF32: NVIDIA A100 whitepaper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from bench import BenchError


@dataclass(frozen=True)
class FloatFormat:
    name: str
    exp_bits: int   # exponent field width
    man_bits: int   # stored significand (fraction) bits; the leading 1 is implicit
    dtype: torch.dtype | None = None  # the torch dtype, when torch has one (TF32 has none)

    @property
    def bits(self) -> int:
        """Bits in the layout: sign + exponent + significand (TF32 is 19 bits kept in a 32-bit word)."""
        return 1 + self.exp_bits + self.man_bits

    @property
    def bias(self) -> int:
        return 2 ** (self.exp_bits - 1) - 1

    @property
    def max(self) -> float:
        return (2.0 - 2.0 ** -self.man_bits) * 2.0 ** self.bias

    @property
    def min_normal(self) -> float:
        return 2.0 ** (1 - self.bias)

    @property
    def min_subnormal(self) -> float:
        return 2.0 ** (1 - self.bias - self.man_bits)

    @property
    def eps(self) -> float:
        return 2.0 ** -self.man_bits

    @property
    def decimal_digits(self) -> float:
        """Significant decimal digits, log10(2^(m+1))."""
        return (self.man_bits + 1) * math.log10(2)

    def row(self) -> dict:
        return {"format": self.name, "sign_bits": 1, "exp_bits": self.exp_bits, "man_bits": self.man_bits,
                "bits": self.bits, "max": self.max, "min_normal": self.min_normal,
                "min_subnormal": self.min_subnormal, "eps": self.eps, "decimal_digits": self.decimal_digits}


FORMATS = {
    "fp32": FloatFormat("fp32", 8, 23, torch.float32),
    "fp16": FloatFormat("fp16", 5, 10, torch.float16),
    "bf16": FloatFormat("bf16", 8, 7, torch.bfloat16),
    "tf32": FloatFormat("tf32", 8, 10, None),
}
TABLE_FIELDS = ("bits", "max", "min_normal", "min_subnormal", "eps")


def get_format(name: str) -> FloatFormat:
    if name not in FORMATS:
        raise BenchError(f"unknown float format {name!r}; choose one of {', '.join(FORMATS)}")
    return FORMATS[name]


def finfo_row(fmt: FloatFormat) -> dict | None:
    """The same fields read from torch.finfo (None for TF32). torch has no subnormal field:
    the smallest subnormal is smallest_normal * eps."""
    if fmt.dtype is None:
        return None
    fi = torch.finfo(fmt.dtype)
    return {"bits": fi.bits if fmt.name != "tf32" else None, "max": fi.max, "min_normal": fi.smallest_normal,
            "min_subnormal": fi.smallest_normal * fi.eps, "eps": fi.eps}


def finfo_mismatches(fmt: FloatFormat) -> list[str]:
    """Fields where the layout-derived value differs from torch.finfo (exact comparison)."""
    ref = finfo_row(fmt)
    if ref is None:
        return []
    mine = fmt.row()
    return [k for k in TABLE_FIELDS if float(mine[k]) != float(ref[k])]


def round_to_format(x: torch.Tensor, fmt: FloatFormat) -> torch.Tensor:
    """Round `x` (any float dtype, any shape) to `fmt` ONCE, from x's own precision, and return the rounded
    values as fp32 (every format here is a subset of fp32). Round to nearest, ties to even; subnormals as
    IEEE 754; values at or beyond max + half an ulp become +-inf; inf / nan stay as they are.

    Emulated in float64 on the layout (e, m), not through torch's casts: torch converts float64 to fp16 /
    bf16 via fp32, which rounds twice (65519.999 -> 65520.0 -> inf, where the correct fp16 value is 65504)."""
    if not x.is_floating_point():
        raise BenchError(f"round_to_format needs a float tensor, got {x.dtype}")
    if fmt.man_bits > 23 or fmt.exp_bits > 8:
        raise BenchError(f"cannot emulate {fmt.name}: only formats inside fp32 (<= 8 exponent and 23 significand "
                         f"bits) are supported")
    x64 = x.to(torch.float64)                                      # exact for fp16/bf16/fp32/fp64 inputs
    _, e = torch.frexp(x64)                                        # |x| = f * 2^e, 0.5 <= f < 1
    exp = torch.clamp(e - 1, min=1 - fmt.bias)                     # the binade, floored at the subnormal range
    quantum = exp - fmt.man_bits                                   # spacing of fmt's values in that binade
    out = torch.ldexp(torch.round(torch.ldexp(x64, -quantum)), quantum)   # torch.round: half to even; exact
    out = torch.where(out.abs() > fmt.max, torch.copysign(torch.full_like(out, math.inf), x64), out)
    out = torch.where(torch.isfinite(x64), out, x64)               # inf / nan stay as they are
    return out.to(torch.float32)                                   # exact: the value is in fmt


def cast_value(value: float, fmt: FloatFormat) -> float:
    """`value` (a Python float, i.e. float64) after rounding once to `fmt` (inf when it overflows)."""
    return float(round_to_format(torch.tensor([value], dtype=torch.float64), fmt)[0])


def overflows(value: float, fmt: FloatFormat) -> bool:
    return math.isinf(cast_value(value, fmt)) and math.isfinite(value)


def update_survives(weight: float, update: float, fmt: FloatFormat) -> bool:
    """Does weight + update, computed and stored in `fmt`, differ from weight? (a tiny SGD step on
    a weight kept in 16 bit vanishes when |update| < half the gap between neighbours of `weight`)."""
    w = round_to_format(torch.tensor([weight], dtype=torch.float64), fmt).double()
    u = round_to_format(torch.tensor([update], dtype=torch.float64), fmt).double()
    # the float64 sum rounded to fmt is fmt's own correctly rounded sum (53 >= 2 * 24 + 2 bits: no double-rounding
    # error, Figueroa 1995)
    return bool(round_to_format(w + u, fmt)[0] != w[0].float())
