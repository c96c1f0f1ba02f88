"""The int8 group's exact parts: the worked examples (Q1, Q2), vector-wise quantization (Q3), and
BLOOM-176B's int8 weight bytes counted on the meta device (Q6).

Q1: the lecture's 'zero-point' example is fixed-range symmetric quantization (0.3 -> 38 -> 0.2992); the same
0.3 through real asymmetric zero-point quantization, and its round-trip error against half a step. Q2: the
HF int8 blog's absmax example (factor 127 / 5.4, its codes). Q3: the int32 product rescaled by the outer
product of row and column absmax equals the product of the dequantised operands, and its error vs FP64
against absmax over the whole tensor.
"""

from __future__ import annotations

import torch

from bench.numerics import accounting, quant
from bench.schema import Recorder

from .settings import EXAMPLE_Q2, EXAMPLE_Q2_CODES


def worked_examples(rec: Recorder) -> None:
    """Q1's fixed-range and zero-point round trips of 0.3 (and zero-point's error on three inputs), Q2's absmax
    example: factor, codes against the blog's, round-trip error."""
    ex = dict(scale="exact", model="-", data="worked-example")
    q = quant.fixed_range_quantize(torch.tensor([0.3]), r=1.0)
    back = float(quant.fixed_range_dequantize(q, r=1.0)[0])
    rec.add("Q1", "q1_fixed_range_code", int(q[0]), unit="int8", method="fixed_range_symmetric", params={"x": 0.3, "range": 1.0}, **ex)
    rec.add("Q1", "q1_fixed_range_dequant", back, unit="value", method="fixed_range_symmetric", params={"x": 0.3}, **ex)
    rec.add("Q1", "q1_fixed_range_loss", 0.3 - back, unit="value", method="fixed_range_symmetric", params={"x": 0.3}, **ex)
    # the same 0.3 through real (asymmetric) zero-point quantization of the range [-1, 1]
    qz, sz, zz = quant.zeropoint_quantize(torch.tensor([-1.0, 0.3, 1.0]))
    rec.add("Q1", "q1_zeropoint_code", int(qz[1]), unit="int8", method="zeropoint",
            params={"x": 0.3, "min": -1.0, "max": 1.0, "scale": float(sz), "zero": int(zz)}, **ex)
    rec.add("Q1", "q1_zeropoint_dequant", float(quant.zeropoint_dequantize(qz, sz, zz)[1]), unit="value",
            method="zeropoint", params={"x": 0.3}, **ex)
    g = torch.Generator().manual_seed(0)
    for name, x in (("gaussian", torch.randn(4096, generator=g)),
                    ("skewed", torch.rand(4096, generator=g) * 5 - 0.5),
                    ("positive", torch.rand(4096, generator=g) + 2.0)):
        qz, sz, zz = quant.zeropoint_quantize(x)
        err = (x - quant.zeropoint_dequantize(qz, sz, zz)).abs().max()
        rec.add("Q1", "q1_zeropoint_roundtrip_err_over_half_step", float(err / (0.5 / sz)), unit="ratio",
                method="zeropoint", params={"input": name, "n": x.numel()}, **{**ex, "data": name})
    x = torch.tensor(EXAMPLE_Q2)
    qa, a = quant.absmax_quantize(x)
    rec.add("Q2", "q2_absmax_factor", float(quant.QMAX / a), unit="factor", method="absmax", params={"absmax": float(a)}, **ex)
    rec.add("Q2", "q2_absmax_code_mismatches", sum(int(u != v) for u, v in zip(qa.tolist(), EXAMPLE_Q2_CODES)),
            unit="count", method="absmax", params={"codes": qa.tolist()}, **ex)
    rec.add("Q2", "q2_absmax_max_roundtrip_err", float((x - quant.absmax_dequantize(qa, a)).abs().max()), unit="value",
            method="absmax", **ex)


def vectorwise_checks(rec: Recorder, shapes) -> None:
    """Q3 per (M, K, N): the int32 route against the definition, and vector-wise vs tensor absmax error vs FP64
    (the rows of x and of W drawn at different scales, where per-row scales pay off)."""
    g = torch.Generator().manual_seed(0)
    for M, K, N in shapes:
        x = torch.randn(M, K, generator=g) * 10 ** (torch.rand(M, 1, generator=g) * 4 - 2)  # rows differ in scale
        w = torch.randn(N, K, generator=g) * 10 ** (torch.rand(N, 1, generator=g) * 2 - 1)
        xq, ax = quant.absmax_quantize(x, dim=-1)
        wq, aw = quant.absmax_quantize(w, dim=-1)
        via_int = quant.int8_matmul(xq, wq).double() * (ax.double() @ aw.double().t()) / quant.QMAX**2
        definition = (xq.double() * ax.double() / 127) @ (wq.double() * aw.double() / 127).t()
        rel = float(((via_int - definition).abs() / definition.abs().clamp_min(1e-30)).max())
        ref = x.double() @ w.double().t()
        err = lambda y: float((y.double() - ref).norm() / ref.norm())
        e_vec, e_abs = err(quant.vectorwise_matmul(x, w)), err(quant.absmax_matmul(x, w))
        p = {"M": M, "K": K, "N": N}
        rec.add("Q3", "q3_definition_max_rel_diff", rel, unit="ratio", method="vectorwise", scale="exact", params=p)
        rec.add("Q3", "q3_rel_err", e_vec, unit="ratio", method="vectorwise", scale="exact", params=p)
        rec.add("Q3", "q3_rel_err", e_abs, unit="ratio", method="absmax", scale="exact", params=p)
        rec.add("Q3", "q3_err_ratio_vectorwise_over_absmax", e_vec / e_abs, unit="ratio", scale="exact", params=p)


def bloom_q6(rec: Recorder) -> None:
    """Q6 at BLOOM-176B: int8 weight bytes vs 16-bit, counted on the meta device (nothing allocated)."""
    acct = accounting.int8_weight_bytes(accounting.bloom_176b_meta())
    kw = dict(model="bloom-176b", scale="exact", method="int8", params={"rest": "16-bit", "scales": "fp32 per row",
                                                                         "skip": "lm_head (tied to the embedding)"})
    for k in ("n_params", "int8_bytes", "scale_bytes", "other_bytes", "int8_total_bytes", "float16_total_bytes"):
        rec.add("Q6", f"bloom_{k}", acct[k], unit="params" if k == "n_params" else "bytes", **kw)
    rec.add("Q6", "int8_weight_ratio_fp16_over_int8", acct["ratio_fp16_over_int8"], unit="ratio", **kw)
