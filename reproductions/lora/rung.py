"""Helpers for the parts measured on a ladder rung: load it, adapt copies of it, random token batches."""

from __future__ import annotations

import copy
import math
import statistics

import torch

from bench import BenchError, ladder
from bench.methods import apply
from bench.methods.common import dims
from bench.methods.presets import make_preset
from bench.models import load_model
from bench.repro import RunContext

from reproductions.lora.settings import ALPHA, Settings


def load(ctx: RunContext, s: Settings):
    """(base model, tokenizer, world or None, name). --model may name another ladder rung or a local folder;
    the knowledge and planted tasks need the world's tokenizer, so they run on ladder rungs only."""
    name = ctx.model or s.rung
    model, tok = load_model(name, ctx.profile.ladder)
    world = ladder.load_world(name) if name in ladder.SPECS else None
    model.eval()
    return model, tok, world, name


def width(model) -> int:
    """Hidden size d of a GPT-2 style model."""
    return dims(model)["hidden"]


def capped_ranks(ranks, model) -> tuple[int, ...]:
    """Ranks capped at the width (r <= min(in, out) of c_attn), deduplicated, ascending."""
    d = width(model)
    return tuple(sorted({min(r, d) for r in ranks}))


def adapt(base, method: str, r: int = 0, seed: int = 0, adapter_size: int = 16, targets=None):
    """A deep copy of `base` with `method` applied, its new weights drawn under `seed`. LoRA uses the
    experiment's fixed ALPHA at every rank; the adapters' bottleneck is capped at the width."""
    model = copy.deepcopy(base)
    torch.manual_seed(seed)
    if method == "full":
        return apply(model, make_preset("full"))
    if method == "lora":
        return apply(model, make_preset("lora", r=r, alpha=ALPHA, target_modules=targets))
    if method == "adapters":
        return apply(model, make_preset("adapters", size=min(adapter_size, width(base))))
    raise BenchError(f"lora group: unknown method {method!r}")


def n_trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def tokens(model, batch: int, seq: int, seed: int = 0) -> torch.Tensor:
    """Random token ids (batch, seq), never the pad id (transformers warns about unmasked padding otherwise)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, model.config.vocab_size, (batch, seq), generator=g)
    pad = getattr(model.config, "pad_token_id", None)
    if pad is not None:
        ids[ids == pad] = (pad + 1) % model.config.vocab_size
    return ids


def nanmean(values) -> float:
    """Mean of the finite values (a diverged run is nan); nan when none is finite."""
    v = [x for x in values if math.isfinite(x)]
    return statistics.mean(v) if v else math.nan


def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"
