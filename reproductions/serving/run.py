"""The serving group's recipe: one frozen model, K tasks' parts, P4's equivalence and parameter count (exact), then
one serving window per traffic level, timed against one tuned model per task (timings.csv)."""

from __future__ import annotations

import torch

from bench import BenchError
from bench import ladder as L
from bench.jobs import threads_per_worker
from bench.methods.common import dims
from bench.methods.lora import lora_layers
from bench.models import load_model, n_positions, vocab_size
from bench.repro import RunContext, settings_with_overrides
from bench.schema import Recorder
from bench.timing import timing_params
from bench.train import num_threads

from .measure import (batching_gain, mixed_models, p4_equivalence, serving_throughput, task_parts, tuned_models,
                      window)
from .settings import CLAIMS, GROUP, SETTINGS, Settings

DATA = "uniform tokens"     # token values change no cost, and the equivalence holds for any input


def run(ctx: RunContext) -> Recorder:
    rec = ctx.recorder(GROUP, CLAIMS)
    s = settings_with_overrides(ctx, SETTINGS, GROUP)
    name = ctx.model or s.rung
    if name in ("smallest", "largest"):
        names = L.rung_names(ctx.profile.ladder)
        name = names[0] if name == "smallest" else names[-1]
    model, _ = load_model(name, ctx.profile.ladder)
    model.eval()
    positions = n_positions(model)
    if s.seq_len + s.prompt_len > positions:
        raise BenchError(f"serving: seq_len {s.seq_len} + prompt_len {s.prompt_len} exceeds {name}'s {positions} "
                         f"positions; lower them with --set seq_len=... / --set prompt_len=...")
    row = dict(model=name, data=DATA, seed=ctx.seeds[0], scale="toy" if name in L.SPECS else "paper")
    rec.notes["serving_config"] = repr(s)
    with num_threads(threads_per_worker()):     # the suite's one thread policy, restored afterwards
        rec.notes["torch_threads"] = torch.get_num_threads()
        g = torch.Generator().manual_seed(ctx.seeds[0])
        lora_kwargs = dict(r=min(s.lora_r, dims(model)["hidden"]), alpha=s.lora_alpha)
        prompts, loras = task_parts(model, s.tasks, s.prompt_len, lora_kwargs, g)
        equivalence(rec, model, prompts, loras, s, g, row)
        tuned, mixed = tuned_models(loras), mixed_models(model, prompts, loras)
        for n in ctx.progress(s.requests, desc="serving windows"):
            ids, task_ids, per_task = window(s.tasks, n, s.seq_len, vocab_size(model), g)
            p = {"K": s.tasks, "requests_per_task": n, "seq_len": s.seq_len, "pairs": s.pairs}
            _timing(rec, "p4_batching_gain", batching_gain(tuned[0], ids, per_task, s.pairs), p, method="-",
                    **row)
            for method in ("prompt", "lora"):
                st = serving_throughput(mixed[method], tuned, ids, task_ids, per_task, s.pairs)
                extra = {"prompt_len": s.prompt_len} if method == "prompt" else {"r": lora_kwargs["r"]}
                _timing(rec, "p4_mixed_over_per_task_throughput", st, {**p, **extra}, method=method, **row)
    return rec


def equivalence(rec: Recorder, model, prompts, loras, s: Settings, g: torch.Generator, row: dict) -> None:
    """Per method: the mixed batch against each task alone (rows of T/2..T tokens, so padding is exercised), and
    the parameters held to serve K tasks this way over K tuned models."""
    vocab = vocab_size(model)
    lo = max(1, s.seq_len // 2)
    lengths = torch.randint(lo, s.seq_len + 1, (s.tasks, s.eq_rows), generator=g).tolist()
    task_rows = [[torch.randint(1, vocab, (t,), generator=g).tolist() for t in per] for per in lengths]
    params = sum(p.numel() for p in model.parameters())
    stored = {"prompt": prompts[0].numel(),
              "lora": sum(lay.lora_A.weight.numel() + lay.lora_B.weight.numel() for _, lay in lora_layers(loras[0]))}
    for method, kw in (("prompt", {"prompts": prompts}), ("lora", {"lora_models": loras})):
        p = {"K": s.tasks, "rows_per_task": s.eq_rows, "lengths": f"{lo}..{s.seq_len}"}
        rec.add("P4", f"p4_{method}_mixed_max_abs_diff", p4_equivalence(model, task_rows, **kw), unit="logit",
                method=method, params=p, **{**row, "scale": "exact"})
        rec.add("P4", "p4_serving_params_ratio", (params + s.tasks * stored[method]) / (s.tasks * params),
                unit="ratio", method=method, params={"K": s.tasks, "stored_per_task": stored[method],
                                                     "note": "1 frozen model + K task parts vs K tuned models"},
                **{**row, "scale": "exact"})


def _timing(rec: Recorder, metric: str, st: dict, p: dict, **row) -> None:
    """One timed comparison: its ratio as the value, the pairs' quartiles as info (measured, never identity)."""
    rec.add("P4", metric, st["ratio"], unit="ratio", params=timing_params(**p), timing=True,
            info={k: v for k, v in st.items() if k != "ratio"}, **row)
