"""The int8 group's measurement recipe: the exact parts, parity with bitsandbytes and latency, then every model
(the profile's ladder rungs, or --model's entries) on the ladder world's held-out text, then MiniLM (issue 15's
census and embedding cosine on a real checkpoint) and Q5's natural-outlier series (natural.py); these two on the
ladder run only."""

from __future__ import annotations

import torch

from bench.jobs import threads_per_worker
from bench.ladder import SPECS, get_spec, rung_names
from bench.repro import RunContext, settings_with_overrides
from bench.schema import Recorder
from bench.train import num_threads

from .bnb import bnb_parity, latency
from .exact import bloom_q6, vectorwise_checks, worked_examples
from .minilm import minilm_rows
from .natural import natural_rows
from .models import entry_specs, model_entries, model_rows
from .settings import CLAIMS, GROUP, SETTINGS, VECTORWISE_SHAPES


def run(ctx: RunContext) -> Recorder:
    rec = ctx.recorder(GROUP, CLAIMS)
    s = settings_with_overrides(ctx, SETTINGS, GROUP)
    specs = entry_specs(ctx)
    worked_examples(rec)
    vectorwise_checks(rec, VECTORWISE_SHAPES)
    bloom_q6(rec)
    with num_threads(threads_per_worker()):     # the suite's one thread policy, restored afterwards
        rec.notes["torch_threads"] = torch.get_num_threads()
        bnb_parity(rec, s.parity_shapes)
        latency(rec, s.latency_shapes, s.latency_reps)
        rec.notes["int8_models"] = specs
        w = get_spec(rung_names(ctx.profile.ladder)[0])
        data_name = f"world-{w.world}-seed{w.world_seed}-heldout"
        # fixed pretrained weights + deterministic int8: one evaluation per model; seed = the rung's
        # pretraining seed (0 for other models)
        entries = model_entries(specs, ctx.profile.ladder, s)
        for name, model, batches, scale, task in ctx.progress(entries, total=len(specs), desc="int8 models"):
            seed = SPECS[name].seed if name in SPECS else 0
            model_rows(rec, [(name, model, batches)], seed, s, data_name, scale=scale,
                       tasks={name: task} if task is not None else None)
        if not ctx.model and s.minilm_snippets:     # the ladder run; --model runs only the models it names
            minilm_rows(rec, s.minilm_snippets)
        if not ctx.model and s.natural_series:
            natural_rows(rec, ctx.profile.ladder, s, ctx.progress)
    rec.notes["int8_config"] = repr(s)
    return rec
