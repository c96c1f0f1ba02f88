"""Q4, exact: our LLM.int8() layer against bitsandbytes' on the same weights and inputs, and both layers'
latency (a benchmark: timings.csv).

`Int8Linear(method="llm_int8")` vs `bnb.nn.Linear8bitLt(threshold=6.0, has_fp16_weights=False)` in eval
mode, with and without planted outlier columns of magnitude 6-60: relative error vs FP64, the outlier
columns each picks, the output difference, and the int8 weight codes.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

import torch
import torch.nn as nn

from bench.numerics import quant
from bench.numerics.int8_linear import Int8Linear
from bench.schema import Recorder
from bench.timing import medians, round_robin, timing_params

from .settings import THRESHOLD


@contextmanager
def quiet_bnb():
    """bitsandbytes' logger at ERROR inside: its warnings stay out of the run's output."""
    log = logging.getLogger("bitsandbytes")
    before = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(before)


def bnb_layer(linear: nn.Linear, threshold: float = THRESHOLD):
    """bitsandbytes' LLM.int8() layer holding `linear`'s weights, quantized, in eval mode (in train mode
    on CPU bitsandbytes multiplies the dequantised weight in float and ignores the threshold)."""
    import bitsandbytes as bnb    # heavy and optional: only the parity and latency parts need it
    layer = bnb.nn.Linear8bitLt(linear.in_features, linear.out_features, bias=linear.bias is not None,
                                has_fp16_weights=False, threshold=threshold)
    layer.load_state_dict(linear.state_dict())
    return layer.to(linear.weight.device).eval()   # .to() quantizes the weight (int8 row-major + SCB)


def bnb_outlier_cols(layer) -> torch.Tensor:
    """Columns bitsandbytes took out on its last forward: `layer.state.idx` (from int8_vectorwise_quant)."""
    idx = layer.state.idx
    return torch.empty(0, dtype=torch.long) if idx is None else idx.flatten().long().cpu()


def parity_inputs(M: int, K: int, n_outlier_cols: int, g: torch.Generator) -> torch.Tensor:
    """Gaussian x (M, K) with `n_outlier_cols` columns carrying a few entries of magnitude 6..60."""
    x = torch.randn(M, K, generator=g)
    if n_outlier_cols:
        cols = torch.randperm(K, generator=g)[:n_outlier_cols]
        for c in cols.tolist():
            rows = torch.randperm(M, generator=g)[:max(1, M // 8)]
            sign = torch.where(torch.rand(len(rows), generator=g) < 0.5, -1.0, 1.0)
            x[rows, c] = sign * (6.0 + 54.0 * torch.rand(len(rows), generator=g))
    return x


@torch.no_grad()
def bnb_parity(rec: Recorder, shapes) -> None:
    g = torch.Generator().manual_seed(0)
    for M, K, N in shapes:
        torch.manual_seed(0)
        lin = nn.Linear(K, N)
        lin.weight.copy_(lin.weight.half().float())   # fp16-representable: bitsandbytes quantizes from fp16
        ours = Int8Linear.from_float(lin, method="llm_int8", threshold=THRESHOLD)
        with quiet_bnb():
            ref_layer = bnb_layer(lin)
            code_diff = int((ref_layer.weight.data.int() - ours.weight_q.int()).abs().max())
            for n_cols in (0, 6):
                x = parity_inputs(M, K, n_cols, g)
                ref = x.double() @ lin.weight.double().t() + lin.bias.double()
                err = lambda y: float((y.double() - ref).norm() / ref.norm())
                y_bnb, y_ours = ref_layer(x), ours(x)
                e_b, e_o = err(y_bnb), err(y_ours)
                cols_b, cols_o = bnb_outlier_cols(ref_layer), ours.last_outlier_cols
                p = {"M": M, "K": K, "N": N, "outlier_cols": n_cols, "threshold": THRESHOLD}
                kw = dict(scale="exact", model=f"linear-{K}x{N}", data=f"gaussian+{n_cols}outliers", params=p)
                rec.add("Q4", "bnb_rel_err", e_b, unit="ratio", method="bnb_llm_int8", **kw)
                rec.add("Q4", "bnb_rel_err", e_o, unit="ratio", method="llm_int8", **kw)
                rec.add("Q4", "bnb_rel_err_ratio_ours_over_bnb", e_o / e_b, unit="ratio", **kw)
                rec.add("Q4", "bnb_outlier_cols_match", int(torch.equal(cols_b.sort().values, cols_o.cpu().sort().values)),
                        unit="bool", **kw)
                rec.add("Q4", "bnb_n_outlier_cols", len(cols_o), unit="count", method="llm_int8", **kw)
                rec.add("Q4", "bnb_output_max_rel_diff_ours_vs_bnb",
                        float((y_ours.double() - y_bnb.double()).abs().max() / ref.abs().max()), unit="ratio", **kw)
                for meth in ("absmax", "vectorwise"):
                    rec.add("Q4", "bnb_rel_err", err(Int8Linear.from_float(lin, method=meth)(x)), unit="ratio",
                            method=meth, **kw)
            rec.add("Q4", "bnb_weight_code_max_diff", code_diff, unit="int8", scale="exact",
                    model=f"linear-{K}x{N}", params={"K": K, "N": N})


@torch.no_grad()
def latency(rec: Recorder, shapes, reps: int) -> None:
    """Latency of fp32 nn.Linear, our LLM.int8() layer and bitsandbytes', one process: `reps` rounds of
    bench.timing.round_robin (each layer once per round, the order rotated), after one warm-up call each."""
    g = torch.Generator().manual_seed(1)
    for M, K, N in shapes:
        torch.manual_seed(0)
        lin = nn.Linear(K, N)
        x = parity_inputs(M, K, 6, g)
        with quiet_bnb():
            layers = {"fp32_linear": lin, "llm_int8": Int8Linear.from_float(lin, threshold=THRESHOLD),
                      "bnb_llm_int8": bnb_layer(lin)}
            med = medians(round_robin({k: (lambda f=f: f(x)) for k, f in layers.items()}, reps, warmup=True))
        p = timing_params(M=M, K=K, N=N, reps=reps)
        kw = dict(model=f"linear-{K}x{N}", scale="exact", params=p, timing=True)
        for k, v in med.items():
            rec.add("Q4", "latency_s", v, unit="s", method=k, **kw)
            rec.add("Q4", "latency_ratio_over_fp32", v / med["fp32_linear"], unit="ratio", method=k, **kw)
        rec.add("Q4", "latency_ratio_ours_over_bnb", med["llm_int8"] / med["bnb_llm_int8"], unit="ratio", **kw)
    rec.notes["int_mm_exact_on_cpu"] = quant._int_mm_works("cpu")
    rec.notes["int_mm_used_on_cpu"] = quant._int_mm_preferred("cpu")
    rec.notes["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
