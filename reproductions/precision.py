"""Mixed precision: float formats (M1), BLOOM-176B memory accounting (M2), automatic mixed precision (M3).

M1 and M2 are exact (bit layouts, bytes per parameter). M3 trains a small GPT-2-style LM in FP32, BF16
autocast, FP16 autocast without and with loss scaling (Micikevicius et al. 2018, arXiv 1710.03740) over
>= 3 seeds and records held-out loss, bytes kept for backward, the share of gradient values that FP16
flushes to zero, and step time (timings.csv). On a CPU without 16-bit units autocast is slower, not
faster: the speed half of M3 can only show on a GPU, and the report says so.

Until the ladder is wired in, M3's model is a tiny GPT-2 built from a config with Markov-chain tokens from
a fixed seed; `run_m3(..., model_factory=)` takes any callable seed -> causal LM.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from bench.numerics import accounting, formats
from bench.numerics.toy import MarkovData, ToyLMConfig, harness_threads, lm_loss, markov_batches, num_threads, tiny_gpt2
from bench.repro import RunContext, settings_with_overrides
from bench.schema import Recorder, read_results, read_meta

GROUP = "precision"
CLAIMS = ("M1", "M2", "M3")
TAKES_MODEL = False   # fixed configs: `--model` is refused before any work (bench.cli.run_group)
REGRESS = [
    ("format_*", 0.0, 1e-9), ("fp16_overflows", 0.0, 0.0), ("update_survives", 0.0, 0.0),
    ("bloom_*", 0.0, 1e-9), ("finetune_*", 0.0, 1e-9),
    ("m3_final_loss*", 0.0, 0.05), ("m3_saved_bytes*", 0.0, 0.02),
    ("m3_grad_*", 0.01, 0.5), ("m3_train_loss", 0.0, 0.1),
]
PRECISIONS = ("fp32", "bf16", "fp16", "fp16_scaled")
FP16_FLUSH = 2.0**-25  # |g| <= 2^-25 rounds to 0 in FP16 (half of the smallest subnormal, ties to even)


# ---------------------------------------------------------------- M1
def format_rows(rec: Recorder) -> None:
    for fmt in formats.FORMATS.values():
        row = fmt.row()
        p = {"format": fmt.name}
        for key in ("exp_bits", "man_bits", "bits", "max", "min_normal", "min_subnormal", "eps"):
            rec.add("M1", f"format_{key}", row[key], unit="bits" if "bits" in key else "value",
                    model=fmt.name, scale="exact", params=p)
        mism = formats.finfo_mismatches(fmt)
        rec.add("M1", "format_finfo_mismatches", len(mism), unit="count", model=fmt.name, scale="exact",
                params={**p, "checked": fmt.dtype is not None, "fields": ",".join(mism)})
    fp16 = formats.FORMATS["fp16"]
    for value in (100000, 70000, 65535, 65520, 65519, 65504):
        rec.add("M1", "fp16_overflows", int(formats.overflows(value, fp16)), unit="bool", model="fp16",
                scale="exact", params={"value": value, "stored_as": formats.cast_value(value, fp16)})
    lr, grad = 1e-3, 1e-2  # a learning-rate-sized step on a small gradient: update 1e-5
    for fmt in formats.FORMATS.values():
        rec.add("M1", "update_survives", int(formats.update_survives(1.0, -lr * grad, fmt)), unit="bool",
                model=fmt.name, scale="exact", params={"format": fmt.name, "weight": 1.0, "update": -lr * grad})


# ---------------------------------------------------------------- M2
INFERENCE_OVERHEADS = (0.0, 0.2)    # assumed: activations, KV cache, CUDA context, as a share of the weights
FINETUNE_OVERHEADS = (0.0, 1.0)     # assumed: activations etc. as a share of the 16 B/param states


def bloom_rows(rec: Recorder) -> None:
    gpu = accounting.A100_80GB
    base = accounting.bloom_accounting()
    n = base["n_params"]
    common = {"n_params": n, "gpu": gpu.name, "gpu_bytes": gpu.memory_bytes}
    rec.add("M2", "bloom_bf16_weight_bytes", base["inference_weight_bytes"], unit="bytes", model="bloom-176b",
            scale="exact", params={**common, "bytes_per_param": 2})
    for part, b in accounting.MIXED_ADAM_BYTES.items():
        rec.add("M2", "finetune_bytes_part", b, unit="bytes/param", model="bloom-176b", scale="exact",
                params={"part": part})
    rec.add("M2", "finetune_bytes_per_param", base["finetune_bytes_per_param"], unit="bytes/param",
            model="bloom-176b", scale="exact", params=dict(accounting.MIXED_ADAM_BYTES))
    for o in INFERENCE_OVERHEADS:
        a = accounting.bloom_accounting(inference_overhead=o)
        rec.add("M2", "bloom_inference_gpus", a["inference_gpus"], unit="gpus", model="bloom-176b", scale="exact",
                params={**common, "overhead": o, "claimed": 8})
    for o in FINETUNE_OVERHEADS:
        a = accounting.bloom_accounting(finetune_overhead=o)
        rec.add("M2", "bloom_finetune_gpus", a["finetune_gpus"], unit="gpus", model="bloom-176b", scale="exact",
                params={**common, "overhead": o, "claimed": 72})
        rec.add("M2", "bloom_finetune_over_inference_memory", a["finetune_over_inference_memory"], unit="ratio",
                model="bloom-176b", scale="exact", params={"overhead": o, "claimed": 9})
    for claimed, total in ((8, base["inference_weight_bytes"]), (72, base["finetune_state_bytes"])):
        rec.add("M2", "bloom_implied_overhead", accounting.implied_overhead(claimed, total, gpu), unit="ratio",
                model="bloom-176b", scale="exact", params={"claimed_gpus": claimed, "bytes": total})


# ---------------------------------------------------------------- M3
@dataclass(frozen=True)
class M3Config:
    model: ToyLMConfig
    steps: int
    batch_size: int
    eval_batches: int = 4
    lr: float = 3e-3
    loss_scale: float = 2.0**16     # GradScaler's initial scale (dynamic afterwards)
    measure_every: int = 10         # gradient-underflow census and loss logging every N steps
    data: MarkovData = MarkovData()


M3_PROFILES = {
    "smoke": M3Config(ToyLMConfig(vocab=128, seq_len=32, d_model=32, n_layer=1, n_head=2), steps=30, batch_size=8),
    "cpu": M3Config(ToyLMConfig(vocab=128, seq_len=64, d_model=64, n_layer=2, n_head=4), steps=150, batch_size=16),
    "gpu": M3Config(ToyLMConfig(vocab=512, seq_len=128, d_model=256, n_layer=4, n_head=8), steps=400, batch_size=32),
}


def _autocast(precision: str, device: str):
    if precision == "fp32":
        return torch.autocast(device_type=device, enabled=False)
    return torch.autocast(device_type=device, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def _saved_bytes(fn: Callable[[], torch.Tensor], params) -> tuple[torch.Tensor, int]:
    """Run fn() and count the bytes autograd keeps for backward (storages counted once), leaving out the
    parameters themselves (they are resident anyway); autocast's 16-bit weight copies do count."""
    resident = {p.untyped_storage().data_ptr() for p in params}
    seen: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in resident:
            seen[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, sum(seen.values())


def _flush_shares(grads: list[torch.Tensor], scale: float) -> tuple[float, float, float]:
    """Of the nonzero FP32 gradient values: share that FP16 flushes to zero as is, share flushed after
    multiplying by `scale`, share that overflows FP16 after scaling."""
    g = torch.cat([x.detach().flatten().float() for x in grads])
    g = g[g != 0]
    if g.numel() == 0:
        return 0.0, 0.0, 0.0
    flush = float(((g.half() == 0)).float().mean())
    scaled = (g * scale).half()
    return flush, float((scaled == 0).float().mean()), float(torch.isinf(scaled).float().mean())


def train_one(precision: str, cfg: M3Config, model: torch.nn.Module, train: list, evals: list, device: str) -> dict:
    """One run; returns final eval loss, loss curve, saved bytes of step 0, step times (measurement work
    excluded), gradient census."""
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps)))
    scaler = torch.amp.GradScaler(device, init_scale=cfg.loss_scale, enabled=(precision == "fp16_scaled"))
    params = list(model.parameters())
    out = {"curve": [], "step_s": [], "zero_share": [], "flush": [], "flush_scaled": [], "overflow_scaled": []}
    for step in range(cfg.steps):
        ids = train[step % len(train)].to(device)
        t0 = time.perf_counter()
        with _autocast(precision, device):
            if step == 0:
                loss, out["saved_bytes"] = _saved_bytes(lambda: lm_loss(model, ids), params)
            else:
                loss = lm_loss(model, ids)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        measure = step % cfg.measure_every == 0 or step == cfg.steps - 1
        t_measure = time.perf_counter()
        if measure:
            scaler.unscale_(opt)
            grads = [p.grad for p in params if p.grad is not None]
            n = sum(g.numel() for g in grads)
            out["zero_share"].append(sum(int((g == 0).sum()) for g in grads) / max(n, 1))
            if precision == "fp32":
                f, fs, ov = _flush_shares(grads, cfg.loss_scale)
                out["flush"].append(f)
                out["flush_scaled"].append(fs)
                out["overflow_scaled"].append(ov)
        t_measure = time.perf_counter() - t_measure
        scaler.step(opt)
        scaler.update()
        sched.step()
        if device == "cuda":
            torch.cuda.synchronize()
        out["step_s"].append(time.perf_counter() - t0 - (t_measure if measure else 0.0))
        if measure:
            out["curve"].append((step, float(loss.detach())))
    model.eval()
    with torch.no_grad():
        losses = [float(lm_loss(model, b.to(device))) for b in evals]
    out["final_loss"] = sum(losses) / len(losses)
    out["final_scale"] = scaler.get_scale() if scaler.is_enabled() else 1.0
    return out


def run_m3(rec: Recorder, cfg: M3Config, seeds, device: str = "cpu",
           model_factory: Callable[[int], torch.nn.Module] | None = None, model_name: str | None = None,
           data_factory: Callable[[int], tuple[list, list]] | None = None, data_name: str | None = None,
           progress=None) -> dict:
    """Train every precision for every seed; add rows to `rec`. model_factory(seed) -> causal LM (a ladder
    rung, say); data_factory(seed) -> (train batches, eval batches) of LongTensors (B, T), one train batch
    per step (cycled when fewer). Defaults: a tiny GPT-2 from cfg.model on Markov tokens."""
    factory = model_factory or (lambda s: tiny_gpt2(cfg.model, seed=s))
    name = model_name or (f"toy-gpt2-d{cfg.model.d_model}-l{cfg.model.n_layer}" if model_factory is None else "custom")
    if data_factory is None:
        data_name = f"markov-v{cfg.data.vocab}-seed{cfg.data.seed}"
        evals = markov_batches(cfg.data, cfg.eval_batches, cfg.batch_size, cfg.model.seq_len, seed=999_999)
        data_factory = lambda s: (markov_batches(cfg.data, cfg.steps, cfg.batch_size, cfg.model.seq_len,
                                                 seed=10_000 + s), evals)
    data_name = data_name or "custom"
    results = {}
    jobs = [(s, p) for s in seeds for p in PRECISIONS]
    for seed, prec in (progress(jobs, desc="M3 precisions") if progress else jobs):
        train, evals = data_factory(seed)
        r = train_one(prec, cfg, factory(seed), train, evals, device)
        results[(seed, prec)] = r
        kw = dict(model=name, data=data_name, method=prec, seed=seed, scale="toy",
                  params={"steps": cfg.steps, "batch_size": cfg.batch_size, "lr": cfg.lr, "device": device})
        rec.add("M3", "m3_final_loss", r["final_loss"], unit="nats", **kw)
        rec.add("M3", "m3_saved_bytes", r["saved_bytes"], unit="bytes", **kw)
        rec.add("M3", "m3_grad_zero_share", statistics.mean(r["zero_share"]), unit="share", **kw)
        for step, loss in r["curve"]:
            rec.add("M3", "m3_train_loss", loss, unit="nats", **{**kw, "params": {**kw["params"], "step": step}})
        steady = r["step_s"][1:] or r["step_s"]
        rec.add("M3", "m3_step_time_s", statistics.median(steady), unit="s", timing=True, **kw)
        if prec == "fp16_scaled":
            rec.add("M3", "m3_final_loss_scale", r["final_scale"], unit="scale", **kw)
    for seed in seeds:
        ref = results[(seed, "fp32")]
        kw = dict(model=name, data=data_name, seed=seed, scale="toy")
        for prec in PRECISIONS[1:]:
            r = results[(seed, prec)]
            p = {"steps": cfg.steps, "device": device}
            rec.add("M3", "m3_final_loss_ratio_over_fp32", r["final_loss"] / ref["final_loss"], unit="ratio",
                    method=prec, params=p, **kw)
            rec.add("M3", "m3_saved_bytes_ratio_over_fp32", r["saved_bytes"] / ref["saved_bytes"], unit="ratio",
                    method=prec, params=p, **kw)
            rec.add("M3", "m3_step_time_ratio_over_fp32",
                    statistics.median(r["step_s"][1:]) / statistics.median(ref["step_s"][1:]), unit="ratio",
                    method=prec, params=p, timing=True, **kw)
        flush, flush_s, over_s = (statistics.mean(ref[k]) for k in ("flush", "flush_scaled", "overflow_scaled"))
        p = {"loss_scale": cfg.loss_scale, "gradients": "fp32 run, all parameters, every measure step"}
        rec.add("M3", "m3_grad_flush_share", flush, unit="share", method="fp16", params={**p, "scaled": False}, **kw)
        rec.add("M3", "m3_grad_flush_share", flush_s, unit="share", method="fp16_scaled", params={**p, "scaled": True}, **kw)
        rec.add("M3", "m3_grad_overflow_share_scaled", over_s, unit="share", method="fp16_scaled", params=p, **kw)
        rec.add("M3", "m3_grad_flush_share_unscaled_minus_scaled", flush - flush_s, unit="share", params=p, **kw)
    return results


# ---------------------------------------------------------------- the harness
def run(ctx: RunContext) -> Recorder:
    rec = ctx.recorder(GROUP, CLAIMS)
    format_rows(rec)
    bloom_rows(rec)
    cfg = settings_with_overrides(ctx, M3_PROFILES, GROUP)
    device = "cuda" if ctx.profile.name == "gpu" and torch.cuda.is_available() else "cpu"
    rec.notes["m3_device"] = device
    rec.notes["m3_config"] = repr(cfg)
    threads = harness_threads()
    with num_threads(threads):
        rec.notes["torch_threads"] = torch.get_num_threads()
        rec.notes["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        run_m3(rec, cfg, ctx.seeds, device=device, progress=ctx.progress)
    return rec


# ---------------------------------------------------------------- the report
def _where(d, w: dict):
    import json as _json
    mask = d["metric"] == d["metric"]
    for k, want in w.items():
        mask &= d["params"].map(lambda s: _json.loads(s).get(k) == want)
    return mask


def _fmt(x: float) -> str:
    if x != x:
        return "nan"
    if float(x).is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:.6g}"


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
    L = ["# Mixed precision (M1-M3)", "",
         f"Profile `{meta.get('profile')}`, seeds {meta.get('seeds')}, commit {meta.get('git_commit')}, "
         f"{meta.get('hardware')}; {meta.get('versions')}. M3 device: {meta.get('m3_device')}, "
         f"torch threads {meta.get('torch_threads')}.", "",
         "## Verdicts", "", *[f"- **{v.claim.id}** {v.claim.title}: **{v.status}**" for v in verdicts], "",
         checks_markdown(verdicts), ""]

    # M1 table
    m1 = df[df["claim"] == "M1"]
    if not m1.empty:
        L += ["## M1: float formats from their bit layouts", "",
              "| format | exp bits | significand bits | max | min normal | min subnormal | eps | matches torch.finfo |",
              "|---|---|---|---|---|---|---|---|"]
        for f in formats.FORMATS:
            g = lambda k: float(m1[(m1["metric"] == f"format_{k}") & (m1["model"] == f)]["value"].iloc[0])
            mm = m1[(m1["metric"] == "format_finfo_mismatches") & (m1["model"] == f)]
            checked = param(mm, "checked").iloc[0]
            L.append(f"| {f} | {int(g('exp_bits'))} | {int(g('man_bits'))} | {g('max'):.6g} | {g('min_normal'):.6g} | "
                     f"{g('min_subnormal'):.6g} | {g('eps'):.6g} | "
                     f"{('yes' if mm['value'].iloc[0] == 0 else 'NO') if checked else 'no torch dtype (layout only)'} |")
        ov = m1[m1["metric"] == "fp16_overflows"]
        fp16_max = float(m1[(m1["metric"] == "format_max") & (m1["model"] == "fp16")]["value"].iloc[0])
        L += ["", "FP16 casts: " + "; ".join(
            f"{int(p['value']):,} -> {p['stored_as']:g}" for p in ov["params"].map(json.loads)) + "."]
        over = {int(p["value"]): r for p, r in zip(ov["params"].map(json.loads), ov["value"])}
        L += [f"The lecture's 'about 100,000 cannot be represented': {'holds' if over.get(100000) else 'does NOT hold'} "
              f"(70,000 overflows too: {bool(over.get(70000))}); FP16's largest value is {fp16_max:,.0f}. The LLM.int8() "
              f"paper's '65535' is a typo: 65,535 {'itself rounds to inf' if over.get(65535) else 'is representable'}.", "",
              "Weight 1.0 plus an update of 1e-3 x 1e-2 = 1e-5: " + ", ".join(
                  f"{r.model}: {'kept' if r.value else 'vanishes'}" for r in m1[m1['metric'] == 'update_survives'].itertuples())
              + " (TF32 only rounds matmul inputs on GPUs; weights stay FP32 there).", ""]
        fig, ax = plt.subplots(figsize=(5.5, 3.5))
        for f in formats.FORMATS:
            fm = formats.FORMATS[f]
            ax.scatter(math.log10(fm.max), -math.log10(fm.eps), s=60)
            ax.annotate(f, (math.log10(fm.max), -math.log10(fm.eps)), textcoords="offset points", xytext=(5, 5))
        ax.set_xlabel("range: log10(max)")
        ax.set_ylabel("precision: -log10(eps)")
        ax.set_title("Float formats: range vs precision")
        atomic_savefig(out_dir / "formats.png", fig)
        plt.close(fig)
        L += ["![formats](formats.png)", ""]

    m2 = df[df["claim"] == "M2"]
    if not m2.empty:
        L += ["## M2: BLOOM-176B accounting", "",
              "Assumptions: 176e9 parameters (the blog's figure), 80 GB = 80e9 bytes per A100, perfect sharding; "
              "overhead = activations, KV cache, CUDA context as a share of the weights (inference) or the states (fine-tuning).",
              "", "| quantity | value | claimed |", "|---|---|---|"]
        for r in m2.itertuples():
            p = json.loads(r.params)
            tag = ", ".join(f"{k}={v}" for k, v in p.items() if k in ("overhead", "part", "claimed_gpus"))
            L.append(f"| {r.metric}{' (' + tag + ')' if tag else ''} | {_fmt(r.value)} | {p.get('claimed', '')} |")
        v = lambda metric, **w: float(m2[(m2["metric"] == metric) & _where(m2, w)]["value"].iloc[0])
        L += ["", f"Reading: {v('bloom_bf16_weight_bytes') / 1e9:,.0f} GB of bf16 weights fit in "
              f"{v('bloom_inference_gpus', overhead=0.0):.0f} A100s before any overhead; the blog's 8 implies "
              f"{100 * v('bloom_implied_overhead', claimed_gpus=8):.0f}% overhead (or simply one whole 8-GPU node). "
              f"Mixed-precision Adam states take {v('finetune_bytes_per_param'):.0f} B/param = "
              f"{v('bloom_finetune_gpus', overhead=0.0):.0f} GPUs; the blog's 72 implies activations and the rest at "
              f"{100 * v('bloom_implied_overhead', claimed_gpus=72):.0f}% of the states. States / weights = "
              f"{v('bloom_finetune_over_inference_memory', overhead=0.0):.0f}x; the blog's 'about 9x' is 72 / 8 GPUs.", ""]

    m3 = df[df["claim"] == "M3"]
    if not m3.empty:
        L += ["## M3: automatic mixed precision (toy)", "",
              "| precision | final held-out loss (mean +- sd) | loss / FP32 | bytes kept for backward / FP32 | "
              "zero share of param grads | step time / FP32 (timings) |", "|---|---|---|---|---|---|"]
        for prec in PRECISIONS:
            fl = m3[(m3["metric"] == "m3_final_loss") & (m3["method"] == prec)]["value"]
            rr = m3[(m3["metric"] == "m3_final_loss_ratio_over_fp32") & (m3["method"] == prec)]["value"]
            sb = m3[(m3["metric"] == "m3_saved_bytes_ratio_over_fp32") & (m3["method"] == prec)]["value"]
            zs = m3[(m3["metric"] == "m3_grad_zero_share") & (m3["method"] == prec)]["value"]
            st = tm[(tm["metric"] == "m3_step_time_ratio_over_fp32") & (tm["method"] == prec)]["value"]
            sd = f" +- {fl.std():.4f}" if len(fl) > 1 else ""
            L.append(f"| {prec} | {fl.mean():.4f}{sd} | {rr.mean():.4f} | {sb.mean():.3f} | {zs.mean():.2e} | "
                     f"{st.mean():.2f}x |" if prec != "fp32" else f"| {prec} | {fl.mean():.4f}{sd} | 1 | 1 | {zs.mean():.2e} | 1 |")
        fs = m3[m3["metric"] == "m3_grad_flush_share"]
        fu = fs[fs["method"] == "fp16"]["value"].mean()
        fsc = fs[fs["method"] == "fp16_scaled"]["value"].mean()
        ovs = m3[m3["metric"] == "m3_grad_overflow_share_scaled"]["value"].mean()
        L += ["", f"Gradient values of the FP32 run that FP16 flushes to zero: {fu:.3e} unscaled, {fsc:.3e} after x "
              f"loss scale (overflow after scaling: {ovs:.3e}).", "",
              f"Speed is not judged on a CPU (device here: {meta.get('m3_device')}, torch CPU capability "
              f"`{meta.get('cpu_capability')}`): CPU autocast adds casts and, without 16-bit matrix units, runs slower "
              "kernels (the machine notes measured BF16 autocast 21-39x slower than FP32 on an AVX2 CPU; this tiny model "
              "is dominated by per-op overhead instead). The step-time ratios (timings.csv, taken on a shared machine) "
              "say nothing about GPUs, where the speed half of the claim lives. Memory is measured as the bytes "
              "autograd keeps for backward in the first step (parameters excluded, autocast's 16-bit weight copies "
              "included); parameters, gradients and Adam states stay FP32 in all variants, so the saving is in "
              "activations only.", ""]
        curves = m3[m3["metric"] == "m3_train_loss"].copy()
        if not curves.empty:
            curves["step"] = param(curves, "step")
            fig, ax = plt.subplots(figsize=(6, 3.8))
            for prec in PRECISIONS:
                c = curves[curves["method"] == prec].groupby("step")["value"].mean()
                ax.plot(c.index, c.values, label=prec)
            ax.set_xlabel("step")
            ax.set_ylabel("train loss (mean over seeds)")
            ax.legend()
            ax.set_title("M3: training loss by precision (toy)")
            atomic_savefig(out_dir / "m3_loss.png", fig)
            plt.close(fig)
            L += ["![m3 loss](m3_loss.png)", ""]
    atomic_write_text(out_dir / "report.md", "\n".join(L) + "\n")
