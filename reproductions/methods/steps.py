"""Part 1: the training step (forward + backward + AdamW + zero_grad on batch x seq tokens) of every method,
timed round-robin over all variants (bench.timing), and each method that peft also has against peft's
counterpart ("peft-<method>") in ABBA pairs (the target's figure; the round-robin ratio stays as a second row)."""

from __future__ import annotations

import statistics

from bench.methods import trainable_parameters
from bench.schema import Recorder
from bench.timing import abba, medians, pair_stats, round_robin, timing_params
from reproductions.methods.models import optimizer, step, variant
from reproductions.methods.settings import LORA_TARGETS, PEFT, TARGET_OURS_OVER_PEFT, Settings, method_kwargs


def train_steps(rec: Recorder, base, ids, methods: list[str], s: Settings, common: dict, shape: dict) -> None:
    """Step time of every method (and of peft's counterparts, "peft-<method>", in `methods`), weights shared;
    medians over `s.rounds` rounds after one warm-up step each (which also allocates the AdamW states)."""
    variants = {m: variant(m, base) for m in methods}
    opts = {m: optimizer(v) for m, v in variants.items()}
    steps = {m: (lambda v=variants[m], o=opts[m]: step(v, o, ids)) for m in methods}
    times = round_robin(steps, s.rounds, warmup=True)
    med = medians(times)
    for m in methods:
        n_train, n_total = trainable_parameters(variants[m]) if not m.startswith(PEFT) else \
            variants[m].get_nb_trainable_parameters()
        kw = {"method_kwargs": method_kwargs(m), **shape}
        rec.add("-", "trainable_params", n_train, unit="params", method=m, scale="toy", params=kw, **common)
        rec.add("-", "total_params", n_total, unit="params", method=m, scale="toy", params=kw, **common)
        tp = timing_params(**kw, rounds=s.rounds, supports="A2")
        rec.add("-", "train_step_s", med[m], unit="s", method=m, scale="toy", params=tp, timing=True, **common)
        rec.add("-", "train_step_ratio_vs_full", med[m] / med["full"], unit="ratio", method=m, scale="toy",
                params=tp, timing=True, **common)
        rec.add("-", "train_step_spread", (max(times[m]) - min(times[m])) / med[m], unit="ratio", method=m,
                scale="toy", params=tp, timing=True, **common)
    for m in methods:
        if PEFT + m in methods:
            ours_vs_peft(rec, m, steps[m], steps[PEFT + m], times, s, common, shape)


def peft_params(method: str) -> dict:
    """What an ours-vs-peft row records of the settings: LoRA-family rank, alpha and targets, else the kwargs."""
    kw = method_kwargs(method)
    if "r" in kw and "alpha" in kw:
        # alpha as an int: the rows' params have always recorded it so (16, not 16.0)
        return {"r": kw["r"], "alpha": int(kw["alpha"]), "targets": ",".join(kw.get("target_modules", LORA_TARGETS))}
    return {"method_kwargs": kw}


def ours_vs_peft(rec: Recorder, m: str, ours, theirs, times: dict, s: Settings, common: dict, shape: dict) -> None:
    """Our step of method `m` / peft's: the round-robin figure, then the target's measurement in ABBA pairs
    (metrics `<m>_step_ours_over_peft[_roundrobin]`)."""
    kw = {**shape, "target": TARGET_OURS_OVER_PEFT, **peft_params(m)}
    per_round = [a / b for a, b in zip(times[m], times[PEFT + m])]
    tp = timing_params(**kw, rounds=s.rounds, protocol="round-robin over all variants",
                       median_of_round_ratios=round(statistics.median(per_round), 4))
    rec.add("-", f"{m}_step_ours_over_peft_roundrobin", statistics.median(times[m]) /
            statistics.median(times[PEFT + m]), unit="ratio", method=m, scale="toy", params=tp, timing=True,
            **common)
    st = pair_stats(*abba(ours, theirs, s.pair_rounds))
    tp = timing_params(**kw, protocol="ABBA pairs", **{k: v for k, v in st.items() if k != "ratio"})
    rec.add("-", f"{m}_step_ours_over_peft", st["ratio"], unit="ratio", method=m, scale="toy", params=tp,
            timing=True, **common)
