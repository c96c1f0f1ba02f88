"""The precision group's measurement recipe: M1 and M2 exact, then M3's training runs on one device."""

from __future__ import annotations

import torch

from bench.jobs import threads_per_worker
from bench.repro import RunContext, settings_with_overrides
from bench.schema import Recorder
from bench.train import num_threads

from .amp import run_m3
from .exact import bloom_rows, format_rows
from .settings import CLAIMS, GROUP, SETTINGS


def run(ctx: RunContext) -> Recorder:
    rec = ctx.recorder(GROUP, CLAIMS)
    format_rows(rec)
    bloom_rows(rec)
    s = settings_with_overrides(ctx, SETTINGS, GROUP)
    device = "cuda" if ctx.profile.name == "gpu" and torch.cuda.is_available() else "cpu"
    rec.notes["m3_device"] = device
    rec.notes["m3_config"] = repr(s)
    with num_threads(threads_per_worker()):     # the suite's one thread policy, restored afterwards
        rec.notes["torch_threads"] = torch.get_num_threads()
        rec.notes["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        run_m3(rec, s, ctx.seeds, device=device, progress=ctx.progress)
    return rec
