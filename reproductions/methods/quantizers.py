"""Part 5: our quantized Linears beside bitsandbytes' on the same weights and inputs (issue 33, item 6).

- LLM.int8(): `bench.numerics.int8_linear.Int8Linear(method="llm_int8", threshold=6)` vs
  `bnb.nn.Linear8bitLt(threshold=6.0, has_fp16_weights=False)`, eval forward, inputs with a few outlier columns
  (magnitudes 6-60, `reproductions.int8.parity_inputs`). Target: ours / bitsandbytes' latency <= 1.0
  (TARGET_QUANT_OURS_OVER_BNB), at an error no larger than bitsandbytes'.
- NF4: `bench.numerics.nf4.Linear4bit` (blocks of 64, double quantization) vs `bnb.nn.Linear4bit(quant_type="nf4",
  compress_statistics=True)`, fp32 compute. Latency and error reported, no target: ours dequantizes the weight
  for an fp32 matmul, bitsandbytes on a CPU with AVX512-BF16 runs a fused 4-bit GEMM in bfloat16 (`bnb_nf4_path`,
  recorded in each row).
Errors are ||y - y_fp64|| / ||y_fp64|| against the float64 product of the same (fp16-representable) weights
(results.csv: deterministic on one machine); latencies are the ABBA pairs' medians (timings.csv).
"""

from __future__ import annotations

import statistics

import torch
import torch.nn as nn

from bench.numerics.int8_linear import Int8Linear
from bench.numerics.nf4 import BLOCKSIZE, Linear4bit
from bench.numerics.quant import LLM_INT8_THRESHOLD
from bench.schema import Recorder
from bench.timing import abba, pair_stats, timing_params
from reproductions.int8 import bnb_layer, parity_inputs, quiet_bnb
from reproductions.methods.settings import TARGET_QUANT_OURS_OVER_BNB, Settings

QUANTIZERS = ("llm_int8", "nf4")


def bnb_nf4(lin: nn.Linear) -> nn.Module:
    """bitsandbytes' NF4 Linear4bit (blocks of 64, double quantization, fp32 compute) holding `lin`'s weights."""
    import bitsandbytes as bnb
    layer = bnb.nn.Linear4bit(lin.in_features, lin.out_features, bias=lin.bias is not None, quant_type="nf4",
                              compute_dtype=torch.float32, compress_statistics=True)
    layer.load_state_dict(lin.state_dict())
    return layer.to(lin.weight.device).eval()          # .to() quantizes


def bnb_nf4_path() -> str:
    """How bitsandbytes computes an eval NF4 forward on this CPU: with AVX512-BF16 it repacks the weight and runs a
    fused 4-bit GEMM in bfloat16 (bitsandbytes.nn.Linear4bit.forward, 0.50); otherwise it dequantizes, as ours does."""
    from bitsandbytes.functional import has_avx512bf16
    return "fused 4-bit GEMM in bfloat16" if has_avx512bf16() else "dequantize, then fp32 matmul"


def layers(kind: str, lin: nn.Linear) -> tuple[nn.Module, nn.Module]:
    """(ours, bitsandbytes') quantized copies of `lin` for quantizer `kind`."""
    if kind == "llm_int8":
        return Int8Linear.from_float(lin, method="llm_int8", threshold=LLM_INT8_THRESHOLD), bnb_layer(lin)
    return Linear4bit.from_linear(lin, BLOCKSIZE, double_quant=True).eval(), bnb_nf4(lin)


@torch.no_grad()
def quantizer_rows(rec: Recorder, s: Settings, seed: int) -> None:
    """Per quantizer and (M, K, N): relative error of ours and of bitsandbytes' vs the float64 product
    (results.csv), and the ABBA-paired latency ratio ours / bitsandbytes' with each side's median (timings.csv)."""
    g = torch.Generator().manual_seed(seed + 3)
    for M, K, N in s.quant_shapes:
        torch.manual_seed(seed)
        lin = nn.Linear(K, N)
        lin.weight.copy_(lin.weight.half().float())     # fp16-representable: bitsandbytes quantizes from fp16
        x = parity_inputs(M, K, s.quant_outlier_cols, g)                  # (M, K)
        ref = x.double() @ lin.weight.double().t() + lin.bias.double()    # (M, N)
        shape = {"M": M, "K": K, "N": N, "outlier_cols": s.quant_outlier_cols}
        common = dict(model=f"linear-{K}x{N}", seed=seed, scale="exact", data=f"gaussian+{s.quant_outlier_cols}outliers")
        for kind in QUANTIZERS:
            with quiet_bnb():
                ours, theirs = layers(kind, lin)
                errs = {side: float((f(x).double() - ref).norm() / ref.norm())        # also the warm-up calls
                        for side, f in (("ours", ours), ("bnb", theirs))}
                t_ours, t_bnb = abba(lambda: ours(x), lambda: theirs(x), s.pair_rounds, warmup=True)
            st = pair_stats(t_ours, t_bnb)
            p = {**shape, "quantizer": kind, "supports": "Q4" if kind == "llm_int8" else "X2"}
            # the CPU decides bitsandbytes' NF4 path: measured, so in info (a row's identity holds settings only)
            info = {"bnb_cpu_path": bnb_nf4_path()} if kind == "nf4" else {}
            for side, e in errs.items():
                rec.add("-", "quantized_linear_rel_err", e, unit="ratio", method=f"{side}-{kind}", params=p,
                        info=info, **common)
            rec.add("-", "quantized_linear_err_ours_over_bnb", errs["ours"] / errs["bnb"], unit="ratio", method=kind,
                    params=p, info=info, **common)
            tp = timing_params(**p, protocol="ABBA pairs",
                               target=TARGET_QUANT_OURS_OVER_BNB if kind == "llm_int8" else None,
                               **{k: v for k, v in st.items() if k != "ratio"})
            rec.add("-", "quantized_linear_latency_ours_over_bnb", st["ratio"], unit="ratio", method=kind, params=tp,
                    info=info, timing=True, **common)
            for side, t in (("ours", t_ours), ("bnb", t_bnb)):
                rec.add("-", "quantized_linear_latency_s", statistics.median(t), unit="s", method=f"{side}-{kind}",
                        params=tp, timing=True, **common)
