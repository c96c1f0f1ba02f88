"""Float formats from bit layouts vs torch.finfo, and the M1 demonstrations."""

import math

import pytest
import torch

from bench import BenchError
from bench.numerics import formats
from bench.numerics.formats import FORMATS


@pytest.mark.parametrize("name", ["fp32", "fp16", "bf16"])
def test_layout_matches_finfo(name):
    fmt = FORMATS[name]
    assert formats.finfo_mismatches(fmt) == []
    fi = torch.finfo(fmt.dtype)
    assert fmt.bits == fi.bits and fmt.max == fi.max and fmt.eps == fi.eps and fmt.min_normal == fi.smallest_normal


def test_published_values():
    fp16, bf16, tf32 = FORMATS["fp16"], FORMATS["bf16"], FORMATS["tf32"]
    assert (fp16.exp_bits, fp16.man_bits, bf16.exp_bits, bf16.man_bits, tf32.exp_bits, tf32.man_bits) == (5, 10, 8, 7, 8, 10)
    assert fp16.max == 65504 and fp16.min_normal == 2**-14 and fp16.min_subnormal == 2**-24 and fp16.eps == 2**-10
    assert f"{fp16.min_normal:.2g}" == "6.1e-05" and f"{fp16.min_subnormal:.3g}" == "5.96e-08"
    assert f"{bf16.max:.3g}" == "3.39e+38" and f"{bf16.eps:.3g}" == "0.00781"
    # the smallest subnormal really is representable and half of it is not
    assert torch.tensor(fp16.min_subnormal).half().item() == fp16.min_subnormal
    assert torch.tensor(fp16.min_subnormal / 2).half().item() == 0.0
    assert tf32.bits == 19 and tf32.eps == 2**-10 and tf32.max == (2 - 2**-10) * 2.0**127


def test_tf32_rounding_matches_reference():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20000, generator=g) * 10 ** (torch.rand(20000, generator=g) * 8 - 4)
    got = formats.round_to_format(x, FORMATS["tf32"]).double()
    # reference: round the significand to 11 bits (1 implicit + 10), ties to even, in float64
    m, e = torch.frexp(x.double())                 # x = m * 2^e, 0.5 <= |m| < 1
    ref = torch.ldexp(torch.round(m * 2**11) / 2**11, e)
    assert torch.equal(got, ref)
    # ties go to even: 1 + 2^-11 is halfway between 1 and 1 + 2^-10
    assert formats.cast_value(1 + 2**-11, FORMATS["tf32"]) == 1.0
    assert formats.cast_value(1 + 3 * 2**-11, FORMATS["tf32"]) == 1 + 2**-9
    special = torch.tensor([float("inf"), -float("inf")])
    assert torch.equal(formats.round_to_format(special, FORMATS["tf32"]), special)


def test_fp16_overflow_demonstrations():
    fp16 = FORMATS["fp16"]
    for v in (100000, 70000, 65535, 65520):
        assert formats.overflows(v, fp16), v
    for v in (65504, 65519, 1000):
        assert not formats.overflows(v, fp16), v
    assert formats.cast_value(65519, fp16) == 65504
    assert not formats.overflows(100000, FORMATS["bf16"])


def test_update_vanishes_in_16_bit_only():
    upd = -1e-3 * 1e-2
    assert formats.update_survives(1.0, upd, FORMATS["fp32"])
    assert not formats.update_survives(1.0, upd, FORMATS["fp16"])
    assert not formats.update_survives(1.0, upd, FORMATS["bf16"])
    assert formats.update_survives(1.0, -1e-2, FORMATS["bf16"])  # a larger step survives


def test_unknown_format():
    with pytest.raises(BenchError, match="unknown float format"):
        formats.get_format("fp8")
    assert math.isclose(FORMATS["fp32"].decimal_digits, 7.22, abs_tol=0.01)


def _reference(value: float, fmt) -> float:
    """Correct rounding of a float64 to (e, m), ties to even, in exact rational arithmetic."""
    from fractions import Fraction
    if value == 0 or not math.isfinite(value):
        return value
    v = Fraction(value)
    exp = max(math.floor(math.log2(abs(value))), 1 - fmt.bias)
    if Fraction(2) ** exp > abs(v):                       # log2 rounded up at a power of two
        exp -= 1
    exp = max(exp, 1 - fmt.bias)
    step = Fraction(2) ** (exp - fmt.man_bits)
    n = v / step
    k = math.floor(n)
    if n - k > Fraction(1, 2) or (n - k == Fraction(1, 2) and k % 2):
        k += 1
    out = float(k * step)
    return math.copysign(math.inf, value) if abs(out) > fmt.max else out


@pytest.mark.parametrize("name", ["fp32", "fp16", "bf16", "tf32"])
def test_rounds_once_from_the_inputs_precision(name):
    """Issue 17 K6: float64 -> fmt directly, never via fp32 (65519.999 -> 65520.0 -> inf was the bug)."""
    fmt = FORMATS[name]
    top = fmt.max + fmt.max * 2.0 ** -(fmt.man_bits + 2)            # three quarters of the way to the tie at max
    ulp1 = 2.0 ** -fmt.man_bits
    cases = [top, -top, 1 + ulp1 / 2 + 2.0 ** -40, 1 + ulp1 / 2, 1 + 3 * ulp1 / 2, fmt.min_subnormal * 0.5000001,
             fmt.min_subnormal * 0.5, fmt.min_normal * (1 - 2.0 ** -30), 0.1, -1e-300, 1e300]
    for v in cases:
        assert formats.cast_value(v, fmt) == _reference(v, fmt), v
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3000, generator=g, dtype=torch.float64) * 10 ** (torch.rand(3000, generator=g, dtype=torch.float64) * 12 - 6)
    got = formats.round_to_format(x, fmt).tolist()
    assert got == [_reference(v, fmt) for v in x.tolist()]
    if fmt.dtype is not None:                                       # fp32 inputs: identical to torch's own cast
        x32 = x.float() * 2.0 ** 100 if name != "fp16" else x.float()
        assert torch.equal(formats.round_to_format(x32, fmt), x32.to(fmt.dtype).float())


def test_fp16_values_just_below_the_tie_at_65520():
    fp16 = FORMATS["fp16"]
    assert formats.cast_value(65519.999, fp16) == 65504 and not formats.overflows(65519.999, fp16)
    assert formats.overflows(65520.0, fp16)                         # the tie rounds to even: 2^16, which overflows
    # update_survives rounds weight and update once each (a float64 weight just above a tie no longer
    # lands on the tie through fp32 and then rounds to even)
    assert formats.update_survives(1.0, 2.0 ** -10, FORMATS["fp16"])
    assert formats.cast_value(1 + 2.0 ** -11 + 2.0 ** -40, fp16) == 1 + 2.0 ** -10
