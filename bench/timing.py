"""One paired timer: wall-clock comparisons that a loaded, drifting machine distorts least.

Two designs, both in seconds per call:
- `round_robin(fns, rounds)`: every variant once per round, the order rotated each round, so no variant always
  runs first or after the same other one. For three or more variants.
- `abba(a, b, pairs)`: a b, b a, a b, ...: each pair runs back to back, so the pair shares the machine's state;
  the ratio of a pair cancels slow drifts. For a target ratio between two variants (`pair_stats`).
Both synchronise CUDA around each call when it is in use. Record `timing_params()` next to any timing.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch

from bench import envinfo


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn: Callable) -> float:
    """Seconds one call of fn takes."""
    _sync()
    t = time.perf_counter()
    fn()
    _sync()
    return time.perf_counter() - t


def round_robin(fns: dict[str, Callable], rounds: int, warmup: bool = False) -> dict[str, list[float]]:
    """name -> per-round seconds; each fn runs once per round, the order rotated by one each round.
    warmup: call every fn once first (not timed)."""
    names = list(fns)
    if warmup:
        for n in names:
            fns[n]()
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        k = r % len(names)
        for n in names[k:] + names[:k]:
            out[n].append(timed(fns[n]))
    return out


def medians(times: dict[str, list[float]]) -> dict[str, float]:
    return {n: statistics.median(v) for n, v in times.items()}


def abba(a: Callable, b: Callable, pairs: int, warmup: bool = False) -> tuple[list[float], list[float]]:
    """Seconds of a and b, `pairs` each, in ABBA order (a b, b a, a b, ...)."""
    if warmup:
        a()
        b()
    ta, tb = [], []
    for i in range(pairs):
        if i % 2 == 0:
            ta.append(timed(a))
            tb.append(timed(b))
        else:
            tb.append(timed(b))
            ta.append(timed(a))
    return ta, tb


def pair_stats(ta: list[float], tb: list[float]) -> dict:
    """a over b: the ratio of medians (the figure a target is checked on), with the per-pair ratios' median
    and quartiles beside it (their spread says how far the machine let the pairs wander)."""
    r = sorted(x / y for x, y in zip(ta, tb))
    q = statistics.quantiles(r, n=4) if len(r) >= 2 else [r[0]] * 3
    return {"ratio": statistics.median(ta) / statistics.median(tb), "median_of_pair_ratios": round(q[1], 4),
            "pair_ratio_q25": round(q[0], 4), "pair_ratio_q75": round(q[2], 4), "pairs": len(r)}


def timing_params(**extra) -> dict:
    """What to record next to a timing: torch threads and the 1-minute load average (foreign load slows
    torch threads a lot), plus `extra`."""
    return {"threads": torch.get_num_threads(), "load_avg_1m": round(envinfo.load_average(), 2), **extra}
