"""M3, toy: automatic mixed precision through the one training loop (bench.train.train).

Trains a small GPT-2-style LM in FP32, BF16 autocast, FP16 autocast without and with loss scaling
(Micikevicius et al. 2018, arXiv 1710.03740: a dynamic GradScaler from `Settings.loss_scale`, on the CPU
too) for every seed, and records held-out loss, bytes kept for backward, the share of gradient values that
FP16 flushes to zero, and step time (timings.csv). On a CPU without 16-bit units autocast is slower, not
faster: the speed half of M3 can only show on a GPU, and the report says so.

The loop's settings are the group's own recipe: AdamW (betas 0.9 / 0.999, no weight decay), cosine from lr
to 0 over `steps` (torch's CosineAnnealingLR(T_max=steps)), no clipping, one fresh batch per step in stream
order. Until the ladder is wired in, the model is a tiny GPT-2 built from a config, on Markov-chain tokens
from a fixed seed; `run_m3(..., model_factory=)` takes any callable seed -> causal LM.
"""

from __future__ import annotations

import math
import statistics
from typing import Callable

import torch

from bench.numerics.toy import markov_batches, tiny_gpt2
from bench.probes import SavedTensors
from bench.schema import Recorder
from bench.train import TrainConfig, collate, perplexity, train

from .settings import AUTOCAST, PRECISIONS, Settings

EVAL_SEED, TRAIN_SEED = 999_999, 10_000   # Markov batch seeds: held-out set, and training (+ the run's seed)


def train_config(precision: str, s: Settings, device: str) -> TrainConfig:
    """bench.train settings of one M3 run (see the module docstring); `precision` picks autocast and scaler."""
    return TrainConfig(lr=s.lr, steps=s.steps, batch_size=s.batch_size, decay="cosine", decay_steps=s.steps,
                       min_lr_ratio=0.0, weight_decay=0.0, betas=(0.9, 0.999), grad_clip=None, shuffle=False,
                       device=device, autocast=AUTOCAST[precision], loss_scale=precision == "fp16_scaled",
                       init_scale=s.loss_scale, loss_scale_cpu=True, progress=False, desc=f"M3 {precision}")


def flush_shares(grads: list[torch.Tensor], scale: float) -> tuple[float, float, float]:
    """Of the nonzero FP32 gradient values: share that FP16 flushes to zero as is (|g| <= 2^-25, half of its
    smallest subnormal, ties to even), share flushed after multiplying by `scale`, share that overflows FP16
    after scaling."""
    g = torch.cat([x.detach().flatten().float() for x in grads])
    g = g[g != 0]
    if g.numel() == 0:
        return 0.0, 0.0, 0.0
    flush = float(((g.half() == 0)).float().mean())
    scaled = (g * scale).half()
    return flush, float((scaled == 0).float().mean()), float(torch.isinf(scaled).float().mean())


class GradCensus:
    """bench.train's on_step hook: every `every` steps and at the last, the step's loss, the share of exactly
    zero parameter-gradient values, and (with `flush`, for the FP32 run) `flush_shares` at `loss_scale`.
    The loop hands it unscaled gradients after the optimizer step, before they are cleared."""

    def __init__(self, every: int, steps: int, loss_scale: float, flush: bool):
        self.every, self.steps, self.loss_scale, self.flush = every, steps, loss_scale, flush
        self.curve: list[tuple[int, float]] = []
        self.zero_share: list[float] = []
        self.shares: list[tuple[float, float, float]] = []   # (flush, flush after scaling, overflow after scaling)

    def __call__(self, step: int, model: torch.nn.Module, loss: torch.Tensor) -> None:
        if step % self.every and step != self.steps - 1:
            return
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        n = sum(g.numel() for g in grads)
        self.zero_share.append(sum(int((g == 0).sum()) for g in grads) / max(n, 1))
        self.curve.append((step, float(loss)))
        if self.flush:
            self.shares.append(flush_shares(grads, self.loss_scale))

    def mean_shares(self) -> tuple[float, float, float]:
        return tuple(statistics.mean(col) for col in zip(*self.shares))


class LossMultiplied(torch.nn.Module):
    """A causal LM whose training loss is multiplied by `multiplier` (M3's underflow regime): every gradient is
    scaled by it, as in a model whose gradients are small (Micikevicius et al. 2018, Sec. 3.2: SSD's activation
    gradients below FP16's 2^-24). AdamW divides the update by the gradient's own scale, so FP32 training is
    unchanged up to eps; FP16 without loss scaling flushes what falls below 2^-24. `inner` is the model itself
    (evaluate it, not this wrapper: the eval loss is not multiplied)."""

    def __init__(self, inner: torch.nn.Module, multiplier: float):
        super().__init__()
        self.inner, self.multiplier = inner, multiplier

    def forward(self, **kw):
        out = self.inner(**kw)
        if out.loss is not None:
            out.loss = out.loss * self.multiplier
        return out


def saved_bytes(model: torch.nn.Module, batch: dict, precision: str, device: str) -> int:
    """Bytes autograd keeps for backward in one training forward of `batch` under the precision's autocast,
    as the loop runs it (bench.probes.SavedTensors: parameters excluded, autocast's 16-bit weight copies
    included). The graph is dropped: the weights and what training does next are untouched."""
    model.to(device).train()
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(AUTOCAST[precision])
    with torch.autocast(device, dtype=dtype, enabled=dtype is not None), \
            SavedTensors(exclude=model.parameters()) as saved:
        model(**{k: v.to(device) for k, v in batch.items()})
    return saved.bytes


def train_precision(precision: str, s: Settings, model: torch.nn.Module, rows: list[dict], evals: list,
                    device: str, multiplier: float = 1.0) -> dict:
    """One run. rows: {"input_ids": (T,)} in stream order; evals: LongTensors (B, T); multiplier != 1: trained
    as `LossMultiplied` (the underflow regime). -> held-out loss after training (nats, FP32 eval, never
    multiplied), bytes kept by the step-0 forward, median step time (s; census steps included), the final loss
    scale (1.0 without a scaler) and the GradCensus."""
    census = GradCensus(s.measure_every, s.steps, s.loss_scale, flush=precision == "fp32")
    saved = saved_bytes(model, collate(rows[:s.batch_size]), precision, device)   # the loop's first batch
    trained = model if multiplier == 1.0 else LossMultiplied(model, multiplier)
    res = train(trained, rows, train_config(precision, s, device), on_step=census,
                eval_fn=lambda m: {"heldout_loss": math.log(perplexity(getattr(m, "inner", m), evals))})
    return {"final_loss": res.final.get("heldout_loss", math.nan), "saved_bytes": saved,
            "step_s": res.step_time_s, "final_scale": res.loss_scale or 1.0, "census": census,
            "diverged_at": res.diverged_at}


def markov_data(s: Settings) -> Callable[[int], tuple[list, list]]:
    """seed -> (training batches, held-out batches): Markov tokens, one (batch_size, seq_len) batch per step;
    the held-out batches are the same for every seed."""
    evals = markov_batches(s.data, s.eval_batches, s.batch_size, s.model.seq_len, seed=EVAL_SEED)
    return lambda seed: (markov_batches(s.data, s.steps, s.batch_size, s.model.seq_len, seed=TRAIN_SEED + seed),
                         evals)


def run_m3(rec: Recorder, s: Settings, seeds, device: str = "cpu",
           model_factory: Callable[[int], torch.nn.Module] | None = None, model_name: str | None = None,
           data_factory: Callable[[int], tuple[list, list]] | None = None, data_name: str | None = None,
           progress=None) -> dict:
    """Train every precision for every seed; add rows to `rec`. model_factory(seed) -> causal LM (a ladder
    rung, say); data_factory(seed) -> (train batches, eval batches) of LongTensors (B, T), one train batch
    per step (cycled when fewer). Defaults: a tiny GPT-2 from s.model on Markov tokens.
    -> {(seed, precision): train_precision's dict}."""
    factory = model_factory or (lambda seed: tiny_gpt2(s.model, seed=seed))
    name = model_name or (f"toy-gpt2-d{s.model.d_model}-l{s.model.n_layer}" if model_factory is None else "custom")
    if data_factory is None:
        data_factory, data_name = markov_data(s), f"markov-v{s.data.vocab}-seed{s.data.seed}"
    data_name = data_name or "custom"
    results = {}
    jobs = [(seed, p) for seed in seeds for p in PRECISIONS]
    for seed, prec in (progress(jobs, desc="M3 precisions") if progress else jobs):
        train_batches, evals = data_factory(seed)
        rows = [{"input_ids": ids} for b in train_batches for ids in b]
        results[(seed, prec)] = r = train_precision(prec, s, factory(seed), rows, evals, device)
        run_rows(rec, r, dict(model=name, data=data_name, method=prec, seed=seed, scale="toy",
                              params={"steps": s.steps, "batch_size": s.batch_size, "lr": s.lr, "device": device}))
    for seed in seeds:
        paired_rows(rec, {p: results[(seed, p)] for p in PRECISIONS}, s,
                    dict(model=name, data=data_name, seed=seed, scale="toy"), device)
    if s.underflow_loss_multiplier != 1.0:
        jobs = [(seed, p) for seed in seeds for p in UNDERFLOW_PRECISIONS]
        for seed, prec in (progress(jobs, desc="M3 underflow regime") if progress else jobs):
            train_batches, evals = data_factory(seed)
            rows = [{"input_ids": ids} for b in train_batches for ids in b]
            results[(seed, prec, "underflow")] = train_precision(prec, s, factory(seed), rows, evals, device,
                                                                 s.underflow_loss_multiplier)
        for seed in seeds:
            underflow_rows(rec, {p: results[(seed, p, "underflow")] for p in UNDERFLOW_PRECISIONS}, s,
                           dict(model=name, data=data_name, seed=seed, scale="toy"))
    return results


UNDERFLOW_PRECISIONS = ("fp32", "fp16", "fp16_scaled")


def underflow_rows(rec: Recorder, by_prec: dict, s: Settings, kw: dict) -> None:
    """One seed's underflow-regime rows: each precision's held-out loss, and the FP32 run's gradients as FP16
    would see them (flushed as is, and after loss scaling)."""
    p = {"steps": s.steps, "loss_multiplier": s.underflow_loss_multiplier}
    for prec, r in by_prec.items():
        rec.add("M3", "m3_underflow_final_loss", r["final_loss"], unit="nats", method=prec,
                params={**p, "final_scale": r["final_scale"]}, **kw)
    flush, flush_s, _ = by_prec["fp32"]["census"].mean_shares()
    p = {**p, "loss_scale": s.loss_scale, "gradients": "fp32 run, all parameters, every measure step"}
    rec.add("M3", "m3_underflow_flush_share", flush, unit="share", method="fp16", params=p, **kw)
    rec.add("M3", "m3_underflow_flush_share", flush_s, unit="share", method="fp16_scaled", params=p, **kw)
    rec.add("M3", "m3_underflow_flush_share_unscaled_minus_scaled", flush - flush_s, unit="share", params=p, **kw)


def run_rows(rec: Recorder, r: dict, kw: dict) -> None:
    """One run's rows: final loss, saved bytes, zero share, loss curve, step time (and the final scale)."""
    census = r["census"]
    rec.add("M3", "m3_final_loss", r["final_loss"], unit="nats", **kw)
    rec.add("M3", "m3_saved_bytes", r["saved_bytes"], unit="bytes", **kw)
    rec.add("M3", "m3_grad_zero_share", statistics.mean(census.zero_share), unit="share", **kw)
    for step, loss in census.curve:
        rec.add("M3", "m3_train_loss", loss, unit="nats", **{**kw, "params": {**kw["params"], "step": step}})
    rec.add("M3", "m3_step_time_s", r["step_s"], unit="s", timing=True, **kw)
    if kw["method"] == "fp16_scaled":
        rec.add("M3", "m3_final_loss_scale", r["final_scale"], unit="scale", **kw)


def paired_rows(rec: Recorder, by_prec: dict, s: Settings, kw: dict, device: str) -> None:
    """One seed's ratios to its FP32 run, and the FP32 run's gradient census as FP16 would see it."""
    ref = by_prec["fp32"]
    p = {"steps": s.steps, "device": device}
    for prec in PRECISIONS[1:]:
        r = by_prec[prec]
        rec.add("M3", "m3_final_loss_ratio_over_fp32", r["final_loss"] / ref["final_loss"], unit="ratio",
                method=prec, params=p, **kw)
        rec.add("M3", "m3_saved_bytes_ratio_over_fp32", r["saved_bytes"] / ref["saved_bytes"], unit="ratio",
                method=prec, params=p, **kw)
        rec.add("M3", "m3_step_time_ratio_over_fp32", r["step_s"] / ref["step_s"], unit="ratio",
                method=prec, params=p, timing=True, **kw)
    flush, flush_s, over_s = ref["census"].mean_shares()
    p = {"loss_scale": s.loss_scale, "gradients": "fp32 run, all parameters, every measure step"}
    rec.add("M3", "m3_grad_flush_share", flush, unit="share", method="fp16", params={**p, "scaled": False}, **kw)
    rec.add("M3", "m3_grad_flush_share", flush_s, unit="share", method="fp16_scaled", params={**p, "scaled": True}, **kw)
    rec.add("M3", "m3_grad_overflow_share_scaled", over_s, unit="share", method="fp16_scaled", params=p, **kw)
    rec.add("M3", "m3_grad_flush_share_unscaled_minus_scaled", flush - flush_s, unit="share", params=p, **kw)
