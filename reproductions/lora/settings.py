"""The LoRA group's contract (GROUP, CLAIMS, REGRESS, SETTINGS: bench.repro), its settings per profile (typed,
frozen), and the experiment's fixed alpha.

Trade-offs: `smoke` shrinks every batch, sequence and step count so the whole group runs in about a minute
(its verdicts are checks of the machinery, not of the claims); `cpu` is the committed run on the `cpu-1m`
rung with two one-thread workers; `gpu` a larger rung with longer fine-tuning. Torch threads follow the one
policy (bench.jobs: $BENCH_THREADS, else 1), not a setting.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.methods.presets import LORA_R
from bench.values import LEARNING_RATE, SEED, Range

GROUP = "lora"
CLAIMS = ("A2", "L1", "L2", "L3", "L4", "L5", "L6")
# Tolerance bands for `bench regress` on the smoke profile: counts and bytes are exact; accuracies and KLs
# move with float reduction order (thread count), so they get bands.
REGRESS = [
    ("lora_*", 0.0, 0.0), ("adapter_*", 0.0, 0.0), ("total_params", 0.0, 0.0), ("full_weights_*", 0.0, 0.0),
    ("paper_*", 0.0, 1e-9), ("train_memory_bytes", 0.0, 1e-9), ("memory_*", 0.0, 1e-6), ("checkpoint_*", 0.0, 1e-6),
    ("l1_merged_delta_max_abs_err", 1e-6, 0.0), ("l1_*", 0.0, 0.0),
    ("l4_trainable_params*", 0.0, 0.0), ("l4_memory_*", 0.0, 0.0), ("l4_train_memory_bytes", 0.0, 1e-9),
    ("l4_chance", 0.0, 1e-9), ("l4_*", 0.05, 0.1),
    ("l5_*_abs_diff", 1e-4, 0.0), ("l5_unloaded_extra_params", 0.0, 0.0),
    ("l6_energy*", 0.05, 0.1), ("l6_*", 0.05, 0.2),
    ("design_power", 0.02, 0.0), ("design_needed_*", 0.0, 0.0),   # seeded simulations of stored noise
]

ALPHA = 8.0            # fixed across ranks, as in the paper ("set alpha to the first r we try and do not tune it")


@dataclass(frozen=True)
class Settings:
    rung: str                                   # ladder rung for every measured part
    ranks: tuple[int, ...] = (1, 2, 4, 8, 16, 64)
    main_r: int = LORA_R                        # the rank of L5 / L1-after-training / the adapter file
    adapter_size: int = 16                      # bottleneck of the adapters baseline (A2)
    mem_batch: int = 8                          # memory / step-time measurement batch (random tokens)
    mem_seq: int = 128
    step_reps: int = 5                          # timed steps per method, round-robin
    ft_steps: int = 120                         # knowledge-task fine-tuning
    ft_batch: int = 32
    lr_lora: float = 3e-3
    # Full FT's lr is picked on validation accuracy (seed 0), strictly inside its grid (L4's precondition): a
    # 4x-spaced grid around the former fixed 5e-4, extended (bench.lrsearch) while the pick sits on an edge.
    full_lr_grid: tuple[float, ...] = (1.25e-4, 5e-4, 2e-3)
    lr_search_factor: float = 4.0
    lr_search_extensions: int = 3               # at most this many extension rounds (one run each)
    attributes: str = "all"
    fmt: str = "discrete"                       # hand-written prompt the rung never saw: a new task format
    l6_k: int = 4                               # planted rank
    l6_ranks: tuple[int, ...] = (1, 2, 4, 8)
    l6_target: str = "c_attn.v"                 # planted matrices: the value third of every c_attn (see plant)
    l6_target_kl: float = 0.1                   # planted strength: KL(teacher || base) per token, nats
    l6_steps: int = 100
    l6_batch: int = 16
    l6_seq: int = 32
    l6_eval_rows: int = 64
    l6_lr_full: float = 1e-3
    l6_lr_lora: float = 3e-2
    l6_shuffle_seed: int = 0                    # the null of L6: full FT on answers permuted within each attribute
    latency_reps: int = 20
    workers: int = 1                            # processes for the fine-tuning runs, one thread each
                                                # ($BENCH_WORKERS overrides; bench.jobs.job_workers)


SETTINGS = {
    "smoke": Settings(rung="smoke-b", mem_batch=4, mem_seq=64, step_reps=2, ft_steps=30, ft_batch=16,
                      l6_steps=40, l6_batch=8, l6_seq=32, l6_eval_rows=32, latency_reps=3),
    "cpu": Settings(rung="cpu-1m", workers=2, l6_steps=200, l6_batch=16),
    "gpu": Settings(rung="gpu-10m", mem_batch=16, ft_steps=300, l6_steps=300, l6_batch=32, l6_seq=64),
}


RANGES = {   # --set checks (bench.values); fields not named here take their type's default (int >= 1, float > 0)
    "lr_lora": LEARNING_RATE, "full_lr_grid": LEARNING_RATE, "l6_lr_full": LEARNING_RATE, "l6_lr_lora": LEARNING_RATE,
    "lr_search_factor": Range(1, 1e3, lo_open=True),
    "lr_search_extensions": Range(0, 100, zero="the grid is never extended past an edge pick"),
    "l6_shuffle_seed": SEED,
}
