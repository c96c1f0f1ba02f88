"""Quantizers and the exact int8 product: the worked examples of Q1-Q3, exactly."""

import pytest
import torch

from bench import BenchError
from bench.numerics import quant


def test_q1_lecture_fixed_range_example():
    q = quant.fixed_range_quantize(torch.tensor([0.3]), r=1.0)
    assert q.dtype == torch.int8 and int(q[0]) == 38           # 0.3 * 127 = 38.1 -> 38
    back = float(quant.fixed_range_dequantize(q)[0])
    assert back == 38 / 127 and f"{back:.4f}" == "0.2992"
    assert f"{0.3 - back:.4f}" == "0.0008"
    with pytest.raises(BenchError):
        quant.fixed_range_quantize(torch.tensor([0.3]), r=0)


def test_zeropoint_is_asymmetric_and_round_trips():
    x = torch.tensor([-1.0, 0.3, 1.0])
    q, s, z = quant.zeropoint_quantize(x)
    assert float(s) == 127.5 and int(z) == 0 and q.tolist() == [-128, 38, 127]
    g = torch.Generator().manual_seed(0)
    for x in (torch.rand(1000, generator=g) * 5 - 0.5, torch.rand(1000, generator=g) + 2, torch.randn(7, 300, generator=g)):
        for dim in (None, -1):
            q, s, z = quant.zeropoint_quantize(x, dim=dim)
            assert q.dtype == torch.int8
            err = (x - quant.zeropoint_dequantize(q, s, z)).abs()
            assert (err <= 0.5 / s + 1e-6).all()
            zero_code = torch.zeros_like(x) + z          # 0 is exactly representable
            assert (quant.zeropoint_dequantize(zero_code.to(torch.int8), s, z) == 0).all()
    # a skewed range uses all 255 levels: min -> -128, max -> 127
    q, _, _ = quant.zeropoint_quantize(torch.tensor([-0.5, 0.0, 4.5]))
    assert q.tolist()[0] == -128 and q.tolist()[-1] == 127


def test_q2_absmax_example():
    x = torch.tensor([1.2, -0.5, -4.3, 1.2, -3.1, 0.8, 2.4, 5.4])
    q, a = quant.absmax_quantize(x)
    assert round(float(127 / a), 1) == 23.5
    assert q.tolist() == [28, -12, -101, 28, -73, 19, 56, 127]
    assert (x - quant.absmax_dequantize(q, a)).abs().max() <= 0.5 * 5.4 / 127 + 1e-6
    qz, _ = quant.absmax_quantize(torch.zeros(3, 4), dim=-1)   # all-zero rows: codes 0, no NaN
    assert (qz == 0).all()


@pytest.mark.parametrize("impl", ["auto", "float", "int_mm"])
def test_int8_matmul_exact(impl):
    if impl == "int_mm" and not quant._int_mm_works("cpu"):
        pytest.skip("torch._int_mm is not exact/available on this CPU")
    g = torch.Generator().manual_seed(0)
    a = torch.randint(-128, 128, (17, 3000), generator=g, dtype=torch.int8)  # K > one float chunk
    b = torch.randint(-128, 128, (9, 3000), generator=g, dtype=torch.int8)
    ref = a.long() @ b.long().t()
    out = quant.int8_matmul(a, b, impl=impl)
    assert out.dtype == torch.int32 and torch.equal(out.long(), ref)
    ext_a, ext_b = torch.full((3, 2048), -128, dtype=torch.int8), torch.full((2, 2048), -128, dtype=torch.int8)
    assert (quant.int8_matmul(ext_a, ext_b, impl=impl).long() == 128 * 128 * 2048).all()


def test_int8_matmul_rejects_bad_operands():
    a = torch.zeros(2, 3, dtype=torch.int8)
    with pytest.raises(BenchError, match="int8 operands"):
        quant.int8_matmul(a.float(), a)
    with pytest.raises(BenchError, match=r"\(M, K\)"):
        quant.int8_matmul(a, torch.zeros(2, 4, dtype=torch.int8))
    with pytest.raises(BenchError, match="impl"):
        quant.int8_matmul(a, a, impl="gpu")


def test_q3_vectorwise_is_its_definition_and_beats_per_tensor():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 256, generator=g) * 10 ** (torch.rand(32, 1, generator=g) * 4 - 2)
    w = torch.randn(48, 256, generator=g)
    xq, ax = quant.absmax_quantize(x, dim=-1)
    wq, aw = quant.absmax_quantize(w, dim=-1)
    definition = (xq.double() * ax.double() / 127) @ (wq.double() * aw.double() / 127).t()
    outer = quant.int8_matmul(xq, wq).double() * (ax.double() @ aw.double().t()) / 127**2
    assert float((outer - definition).abs().max() / definition.abs().max()) < 1e-12
    assert torch.allclose(quant.vectorwise_matmul(x, w).double(), definition, rtol=1e-5, atol=1e-6)
    ref = x.double() @ w.double().t()
    err = lambda y: float((y.double() - ref).norm() / ref.norm())
    assert err(quant.vectorwise_matmul(x, w)) < 0.5 * err(quant.absmax_matmul(x, w))


def test_outlier_columns_threshold_semantics():
    x = torch.zeros(4, 6)
    x[1, 2], x[3, 4], x[0, 5] = 6.0, -7.5, 5.999
    assert quant.outlier_columns(x, 6.0).tolist() == [2, 4]      # |x| >= threshold, any row
    assert quant.outlier_columns(x, 0).numel() == 0              # 0 disables the decomposition
    with pytest.raises(BenchError, match="threshold"):
        quant.outlier_columns(x, -1.0)


def test_llm_int8_matmul_handles_outliers():
    g = torch.Generator().manual_seed(2)
    x, w = torch.randn(64, 128, generator=g), torch.randn(32, 128, generator=g)
    x[:, [5, 77]] *= 20
    ref = x.double() @ w.double().t()
    err = lambda y: float((y.double() - ref).norm() / ref.norm())
    out, cols = quant.llm_int8_matmul(x, w, threshold=6.0)
    assert cols.tolist() == [5, 77]
    assert err(out) < 0.2 * err(quant.vectorwise_matmul(x, w))


def test_tiny_rows_keep_their_own_scale():
    """Issue 17 K4: the zero-row guard must not floor a tiny non-zero scale on one side only."""
    x = torch.tensor([[1e-13, -5e-14, 2.5e-14]])
    for dim in (-1, None):
        q, a = quant.absmax_quantize(x, dim=dim)
        assert q[0, 0] == 127 and float(a.max()) == pytest.approx(1e-13, rel=1e-6)
        err = (quant.absmax_dequantize(q, a) - x).abs().max()
        assert err <= 1e-13 / 254 * (1 + 1e-5)                  # the scheme's promise: half a step of absmax/127
    sub = torch.tensor([[1e-40, -5e-41], [3.0, -1.0], [0.0, 0.0]])  # a subnormal row, a normal one, a zero one
    q, a = quant.absmax_quantize(sub, dim=-1)
    assert q[0].tolist() == [127, -64] and (q[2] == 0).all() and float(a[2]) == 0.0
    back = quant.absmax_dequantize(q, a)
    assert torch.isfinite(back).all() and (back[2] == 0).all()
    assert ((back - sub).abs()[1:] <= a[1:] / 254 * (1 + 1e-6)).all()   # (row 0 dequantises in subnormal arithmetic)
    q, s, z = quant.zeropoint_quantize(x[0])
    assert q.tolist()[:2] == [127, -128]                          # all 255 levels used, as for a normal range
    assert ((quant.zeropoint_dequantize(q, s, z) - x[0]).abs() <= 0.5 / s * (1 + 1e-5)).all()


@pytest.mark.parametrize("fn", [
    lambda x: quant.fixed_range_quantize(x), lambda x: quant.absmax(x), lambda x: quant.absmax_quantize(x),
    lambda x: quant.absmax_quantize(x, dim=-1), lambda x: quant.zeropoint_quantize(x),
    lambda x: quant.zeropoint_quantize(x, dim=-1), lambda x: quant.outlier_columns(x, 6.0),
    lambda x: quant.absmax_matmul(x, torch.ones(3, 4)), lambda x: quant.absmax_matmul(torch.ones(3, 4), x),
    lambda x: quant.vectorwise_matmul(x, torch.ones(3, 4)), lambda x: quant.vectorwise_matmul(torch.ones(3, 4), x),
    lambda x: quant.llm_int8_matmul(x, torch.ones(3, 4)), lambda x: quant.llm_int8_matmul(torch.ones(3, 4), x),
    lambda x: quant.absmax_dequantize(torch.ones(2, 4, dtype=torch.int8), x[:, :1]),
    lambda x: quant.zeropoint_dequantize(torch.ones(2, 4, dtype=torch.int8), x[:, :1], torch.zeros(2, 1)),
], ids=["fixed_range", "absmax", "absmax_quantize", "absmax_quantize_rows", "zeropoint", "zeropoint_rows",
        "outlier_columns", "absmax_matmul_x", "absmax_matmul_w", "vectorwise_x", "vectorwise_w", "llm_int8_x",
        "llm_int8_w", "absmax_dequantize", "zeropoint_dequantize"])
@pytest.mark.parametrize("bad", [float("inf"), -float("inf"), float("nan")])
def test_non_finite_input_is_an_error(fn, bad):
    """Issue 17 K5: one behaviour everywhere (Int8Linear already refused): a one-line BenchError."""
    x = torch.ones(2, 4)
    x[0, 0] = bad
    with pytest.raises(BenchError, match=r"NaN/inf value\(s\)") as e:
        fn(x)
    assert "\n" not in str(e.value)
    with pytest.raises(BenchError, match="finite range"):
        quant.fixed_range_quantize(torch.ones(2), r=float("nan"))
