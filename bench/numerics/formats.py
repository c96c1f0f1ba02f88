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
    """Round fp32 values to `fmt` and return them as fp32. Uses the torch dtype where one exists;
    TF32 (FP32's exponent, 10 significand bits) is emulated by round-to-nearest-even on the bits."""
    x = x.to(torch.float32)
    if fmt.dtype is not None:
        return x.to(fmt.dtype).to(torch.float32)
    if fmt.exp_bits != 8:
        raise BenchError(f"cannot emulate {fmt.name}: only formats with FP32's 8 exponent bits are emulated")
    drop = 23 - fmt.man_bits
    bits = x.contiguous().view(torch.int32).to(torch.int64)
    lsb = (bits >> drop) & 1
    bits = (bits + (1 << (drop - 1)) - 1 + lsb) & ~((1 << drop) - 1)  # nearest, ties to even
    bits = torch.where(bits >= 2**31, bits - 2**32, bits)  # back to signed 32-bit
    out = bits.to(torch.int32).view(torch.float32)
    return torch.where(torch.isfinite(x), out, x)  # inf / nan stay as they are


def cast_value(value: float, fmt: FloatFormat) -> float:
    """`value` after rounding to `fmt` (inf when it overflows)."""
    return float(round_to_format(torch.tensor([value], dtype=torch.float64).float(), fmt)[0])


def overflows(value: float, fmt: FloatFormat) -> bool:
    return math.isinf(cast_value(value, fmt)) and math.isfinite(value)


def update_survives(weight: float, update: float, fmt: FloatFormat) -> bool:
    """Does weight + update, computed and stored in `fmt`, differ from weight? (a tiny SGD step on
    a weight kept in 16 bit vanishes when |update| < half the gap between neighbours of `weight`)."""
    w = round_to_format(torch.tensor([weight]), fmt)
    u = round_to_format(torch.tensor([update]), fmt)
    return bool(round_to_format(w + u, fmt)[0] != w[0])
