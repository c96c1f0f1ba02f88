"""The `real` group's contract names, regression bands, settings per profile and method settings.

Trade-offs of the profiles: smoke starves every run on purpose (192 training snippets, 12-step capped runs) so
that CI checks the machinery in minutes, not the claims; cpu is sized from a pilot so that most runs stop early
before the cap on a 2-core machine; gpu trains on every snippet with more seeds per LoRA rank.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench import BenchError
from bench.methods import make_config
from bench.methods.presets import preset
from bench.repro import RunContext, settings_with_overrides
from bench.values import NONNEG_COUNT, SEED

GROUP = "real"
CLAIMS = ("L4", "A1", "P2", "L5", "A2", "L3", "Q4", "Q5")
SCALE = "real"
METHODS = ("full", "lora", "rslora", "adapters", "prefix", "prompt", "ptuning", "bitfit")
INT8_METHODS = ("absmax", "zeropoint", "vectorwise", "llm_int8")
# Bands for `bench regress` (smoke profile): (pattern, atol, rtol, reason), first match wins. Counts, bytes and
# the split are exact; accuracies move in steps of 1/96, and another CPU's float order can flip a few borderline
# items or one early-stopping decision.
REGRESS = [
    ("*trainable_params", 0.0, 0.0, "parameter counts are exact"),
    ("*_pct", 1e-9, 0.0, "ratios of exact counts"),
    ("adapter_bytes", 512.0, 0.0, "widened from 0 (2026-11-30): the saved folder's config records the base "
                                  "model's path (inside the checkout's virtualenv), so the size moves by the path's "
                                  "length between checkouts (+2 bytes from /work/main to /tmp/ciclone); a tensor "
                                  "more or less moves it by >= 1 KB"),
    ("split_*", 0.0, 0.0, "the split is a seeded shuffle of movie names"),
    ("*memory_bytes", 0.0, 0.01, "live-tensor bytes; activation storages depend only on shapes"),
    ("*ratio_vs_full", 0.0, 0.01, "ratios of byte counts"),
    ("l4_memory_nondecreasing", 0.0, 0.0, "a property of byte counts"),
    ("steps_used", 6.0, 0.0, "early stopping may move by one evaluation (6 steps on smoke) on another float path"),
    ("still_improving_at_cap", 1.0, 0.0, "a 0/1 flag that can flip with one evaluation"),
    ("q4_kl_*", 1e-3, 0.2, "small KLs of a fine-tuned model, relative noise is large"),
    ("chunk_kl", 1e-3, 0.2, "Q4's per-chunk KLs (16 items on smoke): as q4_kl_*"),
    ("chunk_nll", 0.02, 0.1, "Q4's per-chunk NLL of a 12-step smoke model on 16 items: as *_loss"),
    ("q4_emb_cos_*", 1e-3, 0.0, "cosines of a fixed pretrained encoder, float-order noise only"),
    ("*accuracy*", 0.06, 0.0, "96 test items (64 for int8): a few borderline items may flip on another CPU"),
    ("*_points", 12.0, 0.0, "difference of two accuracies in points, each +-6 points"),
    ("*_minus_*", 0.1, 0.0, "difference of two accuracies, each +-0.06"),
    ("*_loss", 0.02, 0.1, "losses after early stopping, float-order sensitive"),
    ("l5_*", 1e-4, 0.0, "merge error is float rounding (~1e-6); mismatches and extra params are 0"),
    ("q5_*", 0.0, 1e-3, "census of a fixed pretrained model on fixed snippets"),
    ("q4_*", 0.06, 0.0, "int8 prediction flips on 64 items"),
    ("*", 0.05, 0.1, "anything else: derived from the rows above"),
]


@dataclass(frozen=True)
class Settings:
    split_seed: int = 0
    max_length: int = 64
    train_rows: int | None = 2000     # seeded subsample of the train split (None = all ~9,400)
    val_rows: int = 400
    test_rows: int = 1000
    batch: int = 32
    max_steps: int = 150              # cap
    eval_every: int = 25
    patience: int = 2                 # evaluations without a better validation accuracy
    warmup: int = 10
    methods: tuple[str, ...] = METHODS
    ranks: tuple[int, ...] = (1, 4, 16, 64)   # LoRA sweep (r = 8 is the main LoRA run)
    rank_seeds: int = 1               # seeds per sweep rank (the first n of the run's seeds)
    census_rows: int = 256
    quant_rows: int | None = None     # test rows for int8 (None = the whole test subsample)
    quant_chunk: int = 10             # test items per Q4 replicate (chunk_nll / chunk_kl; cpu: 500 / 10 = 50 chunks)
    bootstrap: int = 1000
    memory_batch: int = 32
    memory_tokens: int = 64
    bnb: bool = True
    workers: int = 2                  # processes for the training runs ($BENCH_WORKERS overrides; bench.jobs)


SETTINGS = {
    # CI: 192 training snippets, 12-step capped runs (starved on purpose: it checks the machinery, not the claims).
    "smoke": Settings(train_rows=192, val_rows=64, test_rows=96, batch=8, max_steps=12, eval_every=6,
                      patience=1, warmup=2, ranks=(64,), census_rows=48, quant_rows=64, quant_chunk=16, bootstrap=200,
                      memory_batch=4, memory_tokens=32, max_length=48, workers=1),
    # Pilot (2 workers, machine at load ~3 from other jobs): 150-step runs took 190-320 s, best validation at step
    # 100-125, full FT 79.5%, LoRA 79.9%, prompt 76.2%, prefix 76.5%; hence the cap of 120 steps (~1.9 epochs).
    "cpu": Settings(max_steps=120, eval_every=20, val_rows=300, quant_rows=500),
    "gpu": Settings(train_rows=None, val_rows=800, test_rows=None, max_steps=1500, eval_every=100, patience=3,
                    ranks=(1, 2, 4, 16, 32, 64), rank_seeds=3),
}

# Learning rates per method (constant after warmup), chosen in the pilot; full FT needs a far smaller one.
LR = {"full": 5e-5, "lora": 1e-3, "rslora": 1e-3, "adapters": 1e-3, "prefix": 1e-3, "prompt": 1e-2,
      "ptuning": 3e-3, "bitfit": 1e-3}
# This group's departures from the suite's presets (bench.methods.presets): a 64-wide adapter bottleneck,
# 10 prefix tokens, 20 prompt / P-tuning tokens for a 384-wide encoder.
OVERRIDES = {"adapters": {"size": 64}, "prefix": {"num_virtual_tokens": 10}, "prompt": {"num_virtual_tokens": 20},
             "ptuning": {"num_virtual_tokens": 20}}
CONFIG = {m: preset(m, **OVERRIDES.get(m, {}))[1] for m in METHODS}   # method -> make_config kwargs
MAIN_R = CONFIG["lora"]["r"]        # the main LoRA run's rank; the sweep adds s.ranks


def method_config(method: str, r: int | None = None):
    """The MethodConfig of `method` in this group, at LoRA rank r when given."""
    name, kw = preset(method, **OVERRIDES.get(method, {}), **({"r": r} if r is not None else {}))
    return make_config(name, **kw)


def settings_for(ctx: RunContext) -> Settings:
    """The profile's settings with --set overrides; BenchError when the methods or the loop sizes are invalid."""
    s = settings_with_overrides(ctx, SETTINGS, GROUP)
    bad = [m for m in s.methods if m not in METHODS]
    if bad or "full" not in s.methods:
        raise BenchError(f"real: methods must include full and come from {', '.join(METHODS)}; got {s.methods}")
    if s.max_steps < 1 or s.eval_every < 1 or s.patience < 1 or any(r < 1 or r > 384 for r in s.ranks):
        raise BenchError("real: need max_steps, eval_every, patience >= 1 and ranks in 1..384")
    return s


RANGES = {   # --set checks (bench.values); fields not named here take their type's default (int >= 1, float > 0)
    "split_seed": SEED,
    "warmup": NONNEG_COUNT,
}
