"""Int8 quantization: worked examples (Q1, Q2), vector-wise (Q3), LLM.int8() vs bitsandbytes and over
models (Q4), outlier features (Q5), weight memory (Q6).

Exact parts: the lecture's and the HF blog's worked examples through `bench.numerics.quant`; the
vector-wise product against its definition; our `Int8Linear(method="llm_int8")` against bitsandbytes'
`Linear8bitLt(threshold=6.0, has_fp16_weights=False)` in eval mode on the same weights and inputs
(with planted outlier columns of magnitude 6-60): relative error vs FP64 and the outlier columns chosen;
BLOOM-176B's int8 weight bytes on the meta device. Latency of both layers is a benchmark (timings.csv).

Toy parts: held-out perplexity of the profile's ladder rungs (`bench.ladder`: GPT-2-style LMs pretrained
here on the synthetic world; smoke ladder for smoke, cpu ladder for cpu) under FP32 and each int8 method,
before and after planting outlier features (`plant_outliers`: FP32 function unchanged, int8 sees |x| up to
~30), and an outlier census per rung. The evaluation text is the ladder's held-out biographies
(`bench.ladder.heldout_rows`, one fresh biography per person) packed into full blocks. The rungs are fixed
pretrained weights and int8 conversion is deterministic, so each rung is evaluated once (seed = its
pretraining seed), not once per --seeds entry.

Paper-scale path: `--model a,b,...` (rung names, local HF folders or hub ids, via `bench.models.load_model`)
replaces the ladder entries; each model is evaluated on the same held-out text through its own tokenizer.
Planting (and the planted sweep) needs GPT-2 blocks (ln_2 -> mlp.c_fc): other architectures get the
FP32/int8 perplexity table, the census and Q6 only.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from bench.numerics import accounting, quant
from bench.numerics.int8_linear import METHODS, Int8Linear, quantize_model, storage_bytes
from bench.numerics.outliers import outlier_census, plant_outliers
from bench import BenchError
from bench.numerics.toy import harness_threads, num_threads, perplexity
from bench.repro import RunContext, settings_with_overrides
from bench.schema import Recorder, read_meta, read_results

GROUP = "int8"
CLAIMS = ("Q1", "Q2", "Q3", "Q4", "Q5", "Q6")
REGRESS = [
    ("q1_*", 0.0, 1e-9), ("q2_*", 0.0, 1e-9), ("q3_definition_max_rel_diff", 1e-6, 0.0),
    ("q3_rel_err", 0.0, 1e-3, "float matmul reference: its reduction order differs between CPU kinds (moved 1e-4 "
                              "relative under bench regress --other-float-path); a quantizer fault moves it > 10%"),
    ("q3_err*", 0.0, 0.05), ("bnb_*", 0.0, 0.05), ("int8_ppl*", 0.0, 0.03), ("planted_*", 0.0, 0.03),
    ("fp32_ppl", 0.0, 0.03), ("census_*", 0.5, 0.1), ("plant_fp32_max_abs_diff", 1e-4, 0.0),
    ("int8_weight_ratio*", 0.0, 1e-9), ("int8_storage*", 0.0, 0.0), ("*_bytes", 0.0, 1e-9),
]
EXAMPLE_Q2 = [1.2, -0.5, -4.3, 1.2, -3.1, 0.8, 2.4, 5.4]
EXAMPLE_Q2_CODES = [28, -12, -101, 28, -73, 19, 56, 127]
THRESHOLD = 6.0
PLANT_DIMS = (1, 7)      # two planted outlier dimensions (the paper finds <= 7 up to 13B)
PLANT_SCALE = 8.0        # LayerNorm outputs ~N(0,1) become |x| up to ~30: outliers of 6..60


@dataclass(frozen=True)
class Int8Config:
    seq_len: int                                        # held-out block length (capped by a model's positions)
    batch_size: int                                     # blocks per eval batch
    eval_batches: int                                   # at most this many batches of held-out text
    parity_shapes: tuple[tuple[int, int, int], ...]     # (M, K, N): x (M, K), W (N, K)
    latency_shapes: tuple[tuple[int, int, int], ...]
    latency_reps: int
    sweep_scales: tuple[float, ...] = ()                # supporting: planted scale sweep (not judged)


INT8_PROFILES = {
    "smoke": Int8Config(seq_len=64, batch_size=8, eval_batches=2, parity_shapes=((64, 256, 192),),
                        latency_shapes=((16, 512, 512),), latency_reps=3),
    # 8 x 16 x 128 = 16k tokens >= the cpu world's whole held-out set (~7-8k tokens): all of it is used.
    "cpu": Int8Config(seq_len=128, batch_size=16, eval_batches=8,
                      parity_shapes=((512, 1024, 1024), (16, 4096, 4096)),
                      latency_shapes=((16, 4096, 4096), (512, 4096, 4096)), latency_reps=7,
                      sweep_scales=(2.0, 4.0, 8.0, 16.0, 32.0, 64.0)),
}
INT8_PROFILES["gpu"] = INT8_PROFILES["cpu"]  # int8 layers run on the CPU here; bitsandbytes' GPU path is not compared


# ---------------------------------------------------------------- exact: Q1, Q2, Q3
def worked_examples(rec: Recorder) -> None:
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


# ---------------------------------------------------------------- exact: Q4 parity with bitsandbytes
@contextmanager
def _quiet_bnb():
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
    import bitsandbytes as bnb
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
        with _quiet_bnb():
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
    """Round-robin latency of fp32 nn.Linear, our LLM.int8() layer and bitsandbytes', one process."""
    g = torch.Generator().manual_seed(1)
    for M, K, N in shapes:
        torch.manual_seed(0)
        lin = nn.Linear(K, N)
        x = parity_inputs(M, K, 6, g)
        with _quiet_bnb():
            layers = {"fp32_linear": lin, "llm_int8": Int8Linear.from_float(lin, threshold=THRESHOLD),
                      "bnb_llm_int8": bnb_layer(lin)}
            times = {k: [] for k in layers}
            for f in layers.values():
                f(x)  # warm-up
            for _ in range(reps):
                for k, f in layers.items():
                    t0 = time.perf_counter()
                    f(x)
                    times[k].append(time.perf_counter() - t0)
        p = {"M": M, "K": K, "N": N, "reps": reps, "threads": torch.get_num_threads(),
             "load_1m": round(os.getloadavg()[0], 2)}
        med = {k: statistics.median(v) for k, v in times.items()}
        for k, v in med.items():
            rec.add("Q4", "latency_s", v, unit="s", method=k, model=f"linear-{K}x{N}", scale="exact", params=p, timing=True)
            rec.add("Q4", "latency_ratio_over_fp32", v / med["fp32_linear"], unit="ratio", method=k,
                    model=f"linear-{K}x{N}", scale="exact", params=p, timing=True)
        rec.add("Q4", "latency_ratio_ours_over_bnb", med["llm_int8"] / med["bnb_llm_int8"], unit="ratio",
                model=f"linear-{K}x{N}", scale="exact", params=p, timing=True)
    rec.notes["int_mm_exact_on_cpu"] = quant._int_mm_works("cpu")
    rec.notes["int_mm_used_on_cpu"] = quant._int_mm_preferred("cpu")
    rec.notes["cpu_capability"] = torch.backends.cpu.get_cpu_capability()


# ---------------------------------------------------------------- toy: Q2, Q4, Q5, Q6 on models
def ppl_table(entries, methods=METHODS, threshold: float = THRESHOLD) -> list[dict]:
    """entries: (name, model, eval batches). -> rows {model, method, ppl, ratio_over_fp32}; the models are
    left unchanged (each method quantizes a deep copy)."""
    rows = []
    for name, model, batches in entries:
        base = perplexity(model, batches)
        rows.append({"model": name, "method": "fp32", "ppl": base, "ratio_over_fp32": 1.0})
        for m in methods:
            q = quantize_model(copy.deepcopy(model), method=m, threshold=threshold)
            ppl = perplexity(q, batches)
            rows.append({"model": name, "method": m, "ppl": ppl, "ratio_over_fp32": ppl / base})
    return rows


def heldout_batches(world, tokenizer, seq_len: int, batch_size: int, max_batches: int) -> list[torch.Tensor]:
    """The ladder's held-out text (`bench.ladder.heldout_rows`: one fresh biography per person, each after
    an eos) through `tokenizer`, packed into one stream and cut into full (batch_size, seq_len) blocks, so
    int8 layers and the census see no padding. -> at most `max_batches` LongTensors (B, T)."""
    from bench.ladder import heldout_rows
    if tokenizer.eos_token_id is None:
        raise BenchError(f"the int8 harness needs a tokenizer with an eos token, got {type(tokenizer).__name__}")
    stream = [t for r in heldout_rows(world, tokenizer) for t in r["input_ids"]]
    n = len(stream) // seq_len
    if n == 0:
        raise BenchError(f"held-out text has {len(stream)} tokens, fewer than one block of {seq_len}")
    blocks = torch.tensor(stream[:n * seq_len], dtype=torch.long).view(n, seq_len)   # (n, T)
    return list(blocks.split(batch_size))[:max_batches]


def _positions(model) -> int:
    c = model.config
    return int(getattr(c, "n_positions", None) or getattr(c, "max_position_embeddings", None) or 1 << 30)


def model_entries(specs: list[str], ladder: str, cfg: Int8Config):
    """Yield (name, model, eval batches, scale) for each spec (rung name, local folder or hub id), loaded
    one at a time through `bench.models.load_model`; all are evaluated on the ladder world's held-out text."""
    from bench.ladder import SPECS, load_world, rung_names
    from bench.models import load_model
    world = load_world(rung_names(ladder)[0])
    for spec in specs:
        model, tok = load_model(spec, ladder)
        name = spec if spec in SPECS else Path(spec).name or spec
        seq_len = min(cfg.seq_len, _positions(model))
        yield name, model, heldout_batches(world, tok, seq_len, cfg.batch_size, cfg.eval_batches), \
            "toy" if spec in SPECS else "paper"


def entry_specs(ctx: RunContext) -> list[str]:
    """--model a,b,... (comma-separated) or the profile's ladder rungs. Checked before anything runs."""
    from bench.ladder import rung_names
    if not ctx.model:
        return rung_names(ctx.profile.ladder)
    names = rung_names(ctx.profile.ladder)
    specs = [{"smallest": names[0], "largest": names[-1]}.get(s.strip(), s.strip()) for s in str(ctx.model).split(",")]
    if not all(specs):
        raise BenchError(f"--model has an empty entry: {ctx.model!r} (give comma-separated model specs)")
    for s in specs:   # a path that is not there fails now, not after the exact parts have run
        if s.startswith((".", "/", "~")) and not Path(s).expanduser().is_dir():
            raise BenchError(f"model folder {s!r} does not exist")
    return specs


def _is_gpt2(model) -> bool:
    blocks = getattr(getattr(model, "transformer", None), "h", None)
    return blocks is not None and all(hasattr(b, "ln_2") and hasattr(getattr(b, "mlp", None), "c_fc") for b in blocks)


@torch.no_grad()
def model_rows(rec: Recorder, entries, seed: int, cfg: Int8Config, data_name: str, sweep: bool = True,
               scale: str = "toy") -> None:
    """entries: (name, model, eval batches). Planting and the layer error need GPT-2 blocks; other models
    get the unplanted table, the census and Q6."""
    for name, model, batches in entries:
        gpt2 = _is_gpt2(model)
        ids = batches[0]
        kw = dict(model=name, data=data_name, seed=seed, scale=scale)
        pp = {"dims": list(PLANT_DIMS), "scale": PLANT_SCALE}
        variants = [(False, model)]
        if gpt2:
            planted = plant_outliers(copy.deepcopy(model), list(PLANT_DIMS), PLANT_SCALE)
            diff = float((model(input_ids=ids).logits - planted(input_ids=ids).logits).abs().max())
            rec.add("Q5", "plant_fp32_max_abs_diff", diff, unit="logit", params=pp, **kw)
            variants.append((True, planted))
        else:
            rec.notes.setdefault("not_planted", []).append(f"{name} ({type(model).__name__}: not GPT-2 blocks)")
        by_variant = {}
        for variant, m in variants:
            rows = ppl_table([(name, m, batches)])
            by_variant[variant] = {r["method"]: r for r in rows}
            p = {"planted": variant, "threshold": THRESHOLD, **(pp if variant else {})}
            for r in rows:
                if r["method"] == "fp32":
                    rec.add("Q4", "fp32_ppl", r["ppl"], unit="ppl", method="fp32", params=p, **kw)
                    continue
                rec.add("Q4", "int8_ppl", r["ppl"], unit="ppl", method=r["method"], params=p, **kw)
                rec.add("Q4", "int8_ppl_ratio_over_fp32", r["ratio_over_fp32"], unit="ratio", method=r["method"], params=p, **kw)
                if variant:
                    rec.add("Q5", "planted_ppl_ratio_over_fp32", r["ratio_over_fp32"], unit="ratio", method=r["method"],
                            params=p, **kw)
            t = by_variant[variant]
            rec.add("Q2", "int8_ppl_ratio_absmax_over_zeropoint", t["absmax"]["ppl"] / t["zeropoint"]["ppl"], unit="ratio",
                    params=p, **kw)
            for source in ("hidden", "linear_inputs"):
                c = outlier_census(m, batches, source=source)
                cp = {**p, "source": source, "n_layers": c.n_layers, "n_positions": c.n_positions}
                found = {"outlier_dims": c.outlier_dims}   # what the census found: measured, not identity
                for k, v in c.row().items():
                    rec.add("Q5", f"census_{k}", v, unit="share" if "share" in k or "affected" in k else "value",
                            params=cp, info=found, **kw)
                if variant:
                    rec.add("Q5", "census_n_outlier_dims_found_minus_planted", len(c.outlier_dims) - len(PLANT_DIMS),
                            unit="count", params=cp, info=found, **kw)
        # supporting (not judged): the error where the planted dims enter, block 0's MLP input projection
        ref_fc = _fc_out(model, ids) if gpt2 else None
        for variant, m in (variants if gpt2 else ()):
            for meth in ("absmax", "vectorwise", "llm_int8"):
                y = _fc_out(quantize_model(copy.deepcopy(m), method=meth), ids)
                rec.add("Q5", "layer_rel_err_mlp_input_proj", float((y - ref_fc).norm() / ref_fc.norm()), unit="ratio",
                        method=meth, params={"planted": variant, "layer": "transformer.h.0.mlp.c_fc", **pp}, **kw)
        for s in (cfg.sweep_scales if gpt2 and sweep else ()):  # supporting (not judged)
            pl = plant_outliers(copy.deepcopy(model), list(PLANT_DIMS), s)
            for r in ppl_table([(name, pl, batches)], methods=("absmax", "vectorwise", "llm_int8")):
                if r["method"] != "fp32":
                    rec.add("Q5", "planted_scale_sweep_ppl_ratio_over_fp32", r["ratio_over_fp32"], unit="ratio",
                            method=r["method"], params={"scale": s, "dims": list(PLANT_DIMS)}, **kw)
        # Q6 on the toy model: what the converted model really stores vs the accounting
        conv = quantize_model(copy.deepcopy(model), method="llm_int8")
        held = storage_bytes(conv)
        acct = accounting.int8_weight_bytes(model)
        fp32 = storage_bytes(model)["total_bytes"]
        q6 = dict(unit="bytes", method="llm_int8", **kw)
        rec.add("Q6", "int8_storage_int8_bytes", held["int8_bytes"], **q6)
        rec.add("Q6", "int8_storage_minus_accounting_bytes", held["int8_bytes"] - acct["int8_bytes"], **q6)
        rec.add("Q6", "model_fp32_bytes", fp32, **q6)
        rec.add("Q6", "model_int8_held_bytes", held["total_bytes"], **q6)
        rec.add("Q6", "int8_weight_ratio_fp16_over_int8", acct["ratio_fp16_over_int8"], unit="ratio", method="llm_int8",
                params={"rest": "16-bit", "scales": "fp32 per row"}, **kw)
        rec.add("Q6", "int8_held_ratio_fp32_over_int8", fp32 / held["total_bytes"], unit="ratio", method="llm_int8",
                params={"rest": "fp32 (as held here)"}, **kw)


def _fc_out(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Output of block 0's mlp.c_fc for input ids (B*T, 4d), float64."""
    got = []
    h = model.transformer.h[0].mlp.c_fc.register_forward_hook(lambda mod, i, o: got.append(o))
    try:
        model(input_ids=ids)
    finally:
        h.remove()
    return got[0].reshape(-1, got[0].shape[-1]).double()


def bloom_q6(rec: Recorder) -> None:
    acct = accounting.int8_weight_bytes(accounting.bloom_176b_meta())
    kw = dict(model="bloom-176b", scale="exact", method="int8", params={"rest": "16-bit", "scales": "fp32 per row",
                                                                         "skip": "lm_head (tied to the embedding)"})
    for k in ("n_params", "int8_bytes", "scale_bytes", "other_bytes", "int8_total_bytes", "float16_total_bytes"):
        rec.add("Q6", f"bloom_{k}", acct[k], unit="params" if k == "n_params" else "bytes", **kw)
    rec.add("Q6", "int8_weight_ratio_fp16_over_int8", acct["ratio_fp16_over_int8"], unit="ratio", **kw)


# ---------------------------------------------------------------- the harness
def run(ctx: RunContext) -> Recorder:
    rec = ctx.recorder(GROUP, CLAIMS)
    cfg = settings_with_overrides(ctx, INT8_PROFILES, GROUP)
    specs = entry_specs(ctx)
    worked_examples(rec)
    vectorwise_checks(rec, [(64, 256, 128), (16, 1024, 512)])
    bloom_q6(rec)
    threads = harness_threads()
    with num_threads(threads):
        rec.notes["torch_threads"] = torch.get_num_threads()
        bnb_parity(rec, cfg.parity_shapes)
        latency(rec, cfg.latency_shapes, cfg.latency_reps)
        rec.notes["int8_models"] = specs
        from bench.ladder import SPECS, get_spec, rung_names
        w = get_spec(rung_names(ctx.profile.ladder)[0])
        data_name = f"world-{w.world}-seed{w.world_seed}-heldout"
        # fixed pretrained weights + deterministic int8: one evaluation per model; seed = the rung's
        # pretraining seed (0 for other models)
        entries = model_entries(specs, ctx.profile.ladder, cfg)
        for name, model, batches, scale in ctx.progress(entries, total=len(specs), desc="int8 models"):
            seed = SPECS[name].seed if name in SPECS else 0
            model_rows(rec, [(name, model, batches)], seed, cfg, data_name, scale=scale)
    rec.notes["int8_config"] = repr(cfg)
    return rec


# ---------------------------------------------------------------- the report
def report(out_dir: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.fileio import atomic_savefig, atomic_write_text
    from bench.report import checks_markdown, group_verdicts
    from bench.schema import param

    out_dir = Path(out_dir)
    df, tm, meta = read_results(out_dir), read_results(out_dir, timing=True), read_meta(out_dir)
    verdicts = group_verdicts(GROUP, out_dir)
    val = lambda d, metric, **w: d[(d["metric"] == metric) & _mask(d, w)]["value"]
    L = ["# Int8 quantization (Q1-Q6)", "",
         f"Profile `{meta.get('profile')}`, seeds {meta.get('seeds')}, commit {meta.get('git_commit')}, "
         f"{meta.get('hardware')}; {meta.get('versions')}; torch threads {meta.get('torch_threads')}; "
         f"torch._int_mm exact on this CPU: {meta.get('int_mm_exact_on_cpu')}, used: {meta.get('int_mm_used_on_cpu')}.", "",
         f"Models: {', '.join(meta.get('int8_models') or []) or '-'}. Toy scale: the embedded ladder's GPT-2-style rungs "
         "(pretrained here on the synthetic world), evaluated on the ladder's held-out biographies (not the paper's "
         "OPT models on C4); the verdicts compare directions, not the paper's numbers. Each rung is evaluated once "
         "(fixed weights, deterministic int8). Paper scale: only when run with --model.", "",
         "## Verdicts", "", *[f"- **{v.claim.id}** {v.claim.title}: **{v.status}**" for v in verdicts], "",
         checks_markdown(verdicts), ""]

    L += ["## Q1, Q2: worked examples", "",
          f"- Fixed-range symmetric (the lecture's 'zero-point' example): 0.3 -> {_i(val(df, 'q1_fixed_range_code'))} -> "
          f"{_f(val(df, 'q1_fixed_range_dequant'))} (lost {_f(val(df, 'q1_fixed_range_loss'))}).",
          f"- Real asymmetric zero-point over [-1, 1]: 0.3 -> {_i(val(df, 'q1_zeropoint_code'))} -> "
          f"{_f(val(df, 'q1_zeropoint_dequant'))}.",
          f"- Absmax on {EXAMPLE_Q2}: factor {_f(val(df, 'q2_absmax_factor'))}, codes "
          f"{param(df[df['metric'] == 'q2_absmax_code_mismatches'], 'codes').iloc[0] if (df['metric'] == 'q2_absmax_code_mismatches').any() else '-'}.",
          ""]

    par = df[df["metric"] == "bnb_rel_err"]
    if not par.empty:
        L += ["## Q4: our LLM.int8() vs bitsandbytes (relative error vs FP64)", "",
              "| layer | input | ours (llm_int8) | bitsandbytes | ours / bnb | same outlier columns | absmax | vector-wise |",
              "|---|---|---|---|---|---|---|---|"]
        for (model, data), g in par.groupby(["model", "data"], sort=False):
            e = {r.method: r.value for r in g.itertuples()}
            match = val(df, "bnb_outlier_cols_match", model=model, data=data)
            L.append(f"| {model} | {data} | {e.get('llm_int8', math.nan):.3e} | {e.get('bnb_llm_int8', math.nan):.3e} | "
                     f"{e.get('llm_int8', math.nan) / e.get('bnb_llm_int8', math.nan):.3f} | "
                     f"{'yes' if len(match) and match.min() == 1 else 'NO'} | {e.get('absmax', math.nan):.3e} | "
                     f"{e.get('vectorwise', math.nan):.3e} |")
        L += ["", "bitsandbytes exposes the columns it took out as `layer.state.idx` after a forward in eval mode. "
              "Its int8 weight codes equal ours (max code difference "
              f"{_i(val(df, 'bnb_weight_code_max_diff'), agg='max')}).", ""]
    lat = tm[tm["metric"] == "latency_s"]
    if not lat.empty:
        L += ["### Latency on this CPU (benchmark, timings.csv; shared machine, contaminated by other load)", "",
              "| layer shape | M | fp32 nn.Linear | ours llm_int8 | bitsandbytes | ours / fp32 | bnb / fp32 |", "|---|---|---|---|---|---|---|"]
        for model, g in lat.groupby("model", sort=False):
            for M, gg in g.groupby(param(g, "M"), sort=False):
                t = {r.method: r.value for r in gg.itertuples()}
                L.append(f"| {model} | {M} | {t['fp32_linear'] * 1e3:.2f} ms | {t['llm_int8'] * 1e3:.2f} ms | "
                         f"{t['bnb_llm_int8'] * 1e3:.2f} ms | {t['llm_int8'] / t['fp32_linear']:.2f}x | "
                         f"{t['bnb_llm_int8'] / t['fp32_linear']:.2f}x |")
        L += ["", f"torch reports CPU capability `{meta.get('cpu_capability')}`. Our layer multiplies int8 x int8 -> "
              "int32 with `torch._int_mm` (checked exact at start-up, else an exact chunked-fp32 emulation); "
              "bitsandbytes 0.50 uses `torch._int_mm` on CPU only where torch reports AVX-512, and otherwise "
              "multiplies in fp32 after converting the int8 weight each call. So whether int8 is faster or slower "
              "than fp32 here depends on the CPU: these figures hold for this machine only.", ""]

    tab = df[df["metric"].isin(["int8_ppl_ratio_over_fp32"])]
    if not tab.empty:
        tab = tab.assign(planted=param(tab, "planted"))
        fp = df[df["metric"] == "fp32_ppl"].assign(planted=lambda d: param(d, "planted"))
        L += ["## Q2, Q4: held-out perplexity ratio to FP32", "",
              "| model | planted outliers | FP32 ppl | " + " | ".join(METHODS) + " |", "|---|---|---|" + "---|" * len(METHODS)]
        for (model, planted), g in tab.groupby(["model", "planted"], sort=False):
            f = fp[(fp["model"] == model) & (fp["planted"] == planted)]["value"]
            cells = []
            for m in METHODS:
                v = g[g["method"] == m]["value"]
                cells.append(f"{v.mean():.4f}" + (f" +- {v.std():.4f}" if len(v) > 1 else ""))
            L.append(f"| {model} | {planted} | {f.mean():.3f} | " + " | ".join(cells) + " |")
        q2 = df[df["metric"] == "int8_ppl_ratio_absmax_over_zeropoint"].assign(planted=lambda d: param(d, "planted"))
        for planted, g in q2.groupby("planted", sort=False):
            L.append(f"\nQ2, absmax ppl / zero-point ppl ({'planted' if planted else 'not planted'}): mean "
                     f"{g['value'].mean():.5f}, sd {g['value'].std():.5f}, n = {len(g)} (model x seed); compare the "
                     "difference from 1 with the spread before reading an ordering into it.")
        L += ["", f"Planted: dims {list(PLANT_DIMS)} of every MLP input scaled x{PLANT_SCALE:g} via ln_2 and compensated in "
              "mlp.c_fc (FP32 function unchanged). bitsandbytes-style LLM.int8() multiplies the outlier columns by the "
              "*dequantised* int8 weight, whose compensated rows are small: their rounding error grows with the "
              "planted scale (see the sweep).", ""]
        fig, ax = plt.subplots(figsize=(7, 3.8))
        groups = list(tab.groupby(["model", "planted"], sort=False))
        width = 0.8 / max(len(groups), 1)
        for i, ((model, planted), g) in enumerate(groups):
            means = [100 * (g[g["method"] == m]["value"].mean() - 1) for m in METHODS]
            ax.bar([j + i * width for j in range(len(METHODS))], means, width, label=f"{model}{' planted' if planted else ''}")
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(METHODS))], METHODS)
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set_yscale("symlog", linthresh=0.1)
        ax.set_ylabel("perplexity change vs FP32 (%)")
        ax.legend(fontsize=7)
        ax.set_title("Int8 methods over the ladder")
        atomic_savefig(out_dir / "int8_ppl.png", fig)
        plt.close(fig)
        L += ["![int8 ppl](int8_ppl.png)", ""]
    sw = df[df["metric"] == "planted_scale_sweep_ppl_ratio_over_fp32"]
    if not sw.empty:
        sw = sw.assign(s=param(sw, "scale"))
        fig, ax = plt.subplots(figsize=(6, 3.6))
        for m, g in sw.groupby("method"):
            c = 100 * (g.groupby("s")["value"].mean() - 1)
            ax.plot(c.index, c.values, marker="o", label=m)
        ax.set_xscale("log", base=2)
        ax.set_yscale("symlog", linthresh=0.1)
        ax.set_xlabel("planted scale")
        ax.set_ylabel("perplexity change vs FP32 (%)")
        ax.legend()
        ax.set_title("Planted-outlier scale sweep (supporting, not judged)")
        atomic_savefig(out_dir / "planted_sweep.png", fig)
        plt.close(fig)
        L += ["![sweep](planted_sweep.png)", ""]

    le = df[df["metric"] == "layer_rel_err_mlp_input_proj"]
    if not le.empty:
        le = le.assign(planted=param(le, "planted"))
        L += ["### Where the planted dims enter (supporting, not judged)", "",
              "Relative error of block 0's MLP input projection output vs FP32:", "",
              "| model | planted | absmax | vectorwise | llm_int8 |", "|---|---|---|---|---|"]
        for (model, planted), g in le.groupby(["model", "planted"], sort=False):
            c = [g[g["method"] == m]["value"].mean() for m in ("absmax", "vectorwise", "llm_int8")]
            L.append(f"| {model} | {planted} | " + " | ".join(f"{v:.3e}" for v in c) + " |")
        L += ["", "If the layer error grows with planting while perplexity barely moves, the toy models' output is "
              "insensitive to their MLPs' precision: the mechanism is there, the model-level breakage is not.", ""]
    cen = df[df["metric"].str.startswith("census_") & (df["metric"] != "census_n_outlier_dims_found_minus_planted")]
    if not cen.empty:
        cen = cen.assign(planted=param(cen, "planted"), source=param(cen, "source"))
        L += ["## Q5: outlier census per model", "",
              "| model | planted | source | share in [-3.5, 3.5] | max abs | outlier dims | % layers | % positions |",
              "|---|---|---|---|---|---|---|---|"]
        for (model, planted, source), g in cen.groupby(["model", "planted", "source"], sort=False):
            v = lambda k: g[g["metric"] == f"census_{k}"]["value"].mean()
            L.append(f"| {model} | {planted} | {source} | {v('share_within_3_5'):.4f} | {v('max_abs_hidden'):.2f} | "
                     f"{v('n_outlier_dims'):.1f} | {100 * v('layers_affected'):.0f}% | {100 * v('positions_affected'):.0f}% |")
        L += ["", "Emergence with scale (the paper's 6.7B transition) cannot be shown on toy models; the census is "
              "recorded per rung (smallest to largest) so the trend over the ladder can be read.", ""]

    q6 = df[df["claim"] == "Q6"]
    if not q6.empty:
        L += ["## Q6: weight memory", "", "| model | metric | value |", "|---|---|---|"]
        for r in q6.itertuples():
            if r.seed in (-1, 0):
                L.append(f"| {r.model} | {r.metric} | {_fmt(r.value)} |")
        L += ["", "BLOOM-176B: every linear layer but the (tied) LM head in int8 with fp32 row scales, the rest "
              "(embeddings, norms, biases) in 16 bit, counted on the meta device.", ""]
    atomic_write_text(out_dir / "report.md", "\n".join(L) + "\n")


def _mask(d, w):
    m = True
    for k, v in w.items():
        m = m & (d[k] == v)
    return m if not isinstance(m, bool) else d["metric"] == d["metric"]


def _f(s) -> str:
    return f"{float(s.iloc[0]):.6g}" if len(s) else "-"


def _i(s, agg: str = "first") -> str:
    if not len(s):
        return "-"
    return str(int(s.max() if agg == "max" else s.iloc[0]))


def _fmt(x: float) -> str:
    if x != x:
        return "nan"
    if float(x).is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:.4g}"
