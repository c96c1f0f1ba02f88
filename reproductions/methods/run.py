"""The benchmark's run: per model, the four parts in one process (see the package doc), each phase's wall time
in meta.json (`phase_wall_s`)."""

from __future__ import annotations

import importlib.util
import time

import torch

from bench import envinfo
from bench.probes import trim
from bench.repro import RunContext, settings_with_overrides
from bench.schema import Recorder
from reproductions.methods.inference import inference_rows
from reproductions.methods.memory import accounting_rows, peak_rows
from reproductions.methods.mixed import mixed_serving
from reproductions.methods.quantizers import quantizer_rows
from reproductions.methods.models import build
from reproductions.methods.settings import CLAIMS, GROUP, METHODS, PEFT, PEFT_METHODS, SETTINGS
from reproductions.methods.steps import train_steps


class Laps:
    """Wall seconds per phase, into `phases` (name -> s, one decimal)."""

    def __init__(self, phases: dict):
        self.phases, self.clock = phases, time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.phases[name] = round(now - self.clock, 1)
        self.clock = now


def plan(have_peft: bool) -> list[str]:
    """The variants the training-step part times: every registered method, then peft's counterpart of each
    method that has one ("peft-<method>"), when peft is installed."""
    return list(METHODS) + ([PEFT + m for m in PEFT_METHODS] if have_peft else [])


def run(ctx: RunContext) -> Recorder:
    s = settings_with_overrides(ctx, SETTINGS, GROUP)
    rec = ctx.recorder(GROUP, CLAIMS)
    rec.threads = torch.get_num_threads()        # timed with torch's default (all cores), not the suite's 1
    rec.notes["load_average_1m_at_start"] = envinfo.load_average()
    rec.notes["torch_threads"] = torch.get_num_threads()
    seed = ctx.seeds[0]
    dev = envinfo.device()
    have_peft = importlib.util.find_spec("peft") is not None
    if not have_peft:
        rec.notes["peft"] = "not installed: no ours-vs-peft rows"
    methods = plan(have_peft)
    lap = Laps(rec.notes.setdefault("phase_wall_s", {}))
    for spec in ctx.progress(s.models, desc="methods: models"):
        base = build(spec, s.seq, seed).to(dev)
        g = torch.Generator().manual_seed(seed)
        ids = torch.randint(1, spec.vocab, (s.batch, s.seq), generator=g).to(dev)
        common = dict(model=spec.name, seed=seed, data="random-tokens")
        shape = {"batch": s.batch, "seq": s.seq, "n_embd": spec.n_embd, "n_layer": spec.n_layer,
                 "vocab": spec.vocab}
        train_steps(rec, base, ids, methods, s, common, shape)
        trim()
        lap(f"{spec.name}:steps")
        accounting_rows(rec, base, ids, ctx.progress(METHODS, desc=f"{spec.name}: memory", leave=False),
                        common, shape)
        lap(f"{spec.name}:accounting")
        peak_rows(rec, base, ids, ctx.progress(METHODS, desc=f"{spec.name}: peak", leave=False), dev, common,
                  shape)
        lap(f"{spec.name}:peak")
        # the parts below compute values (merge errors, mixed-batch agreement) from a fresh base (the steps above
        # moved the shared weights, in an order that depends on how many methods there are) and draw LoRA's A
        # from torch's global generator, seeded here: so a newly registered method changes none of their rows
        del base
        trim()
        base = build(spec, s.seq, seed).to(dev)
        torch.manual_seed(seed)
        inference_rows(rec, base, spec, s, seed, dev, common)
        trim()
        lap(f"{spec.name}:inference")
        if s.mixed_tasks > 0:
            torch.manual_seed(seed + 1)
            mixed_serving(rec, base, spec, s, seed, dev, common)
            lap(f"{spec.name}:mixed")
        del base
        trim()
    if s.quant_shapes and importlib.util.find_spec("bitsandbytes") is not None:
        quantizer_rows(rec, s, seed)
        lap("quantizers")
    rec.notes["load_average_1m_at_end"] = envinfo.load_average()
    return rec
