"""The beyond group's constants and its typed settings per profile (the `--set` keys), checked in `settings_for`.

One task, one rung, one learning rate, seven arms: the methods people fine-tune with in 2026 (QLoRA, DoRA, PiSSA,
LoRA+) beside plain LoRA at the same rank, on the next-month task of the scale group (a task the frozen model cannot
do: "<made-up name> celebrates a birthday in May . new month :" -> "June"), on the ladder's smallest rung, where
low-rank LoRA leaves room below the ceiling (the pilot: noise.json). Every run trains with early stopping as the
scale group's do (patience evaluations without a drop of min_delta in the validation answer loss, the best
evaluation's weights kept), one call of `bench.train.train` each; the learning rate is LoRA's, the same for every
arm but LoRA+ (the DoRA, PiSSA and QLoRA papers train their method at LoRA's hyper-parameters); LoRA+ is itself a
learning-rate rule (B's rate `loraplus_ratio` x A's), so its A rate had a search of its own in the pilot, as the
LoRA+ paper tunes both methods' rates. The convergence claims read `steps_to_target`: the first evaluation
step at which the validation answer loss is <= `target_loss` (nats/token; the cap when never reached).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench import BenchError
from bench.methods.presets import LORA_ALPHA
from bench.repro import RunContext, settings_with_overrides
from bench.values import NONNEG_COUNT, Range

GROUP = "beyond"
CLAIMS = ("X1", "X2", "X3", "X4", "X5")
TASK = "nextmonth"
JOB_VERSION = 1
# arm label -> (registered method, trains with LoRA+): the label is the rows' `method`, params.r the rank
ARMS = {"lora": ("lora", False), "qlora": ("qlora", False), "dora": ("dora", False), "pissa": ("pissa", False),
        "loraplus": ("lora", True)}
WHY = ("smoke: a few dozen steps on a smoke rung, early stopping branches (a run stops at an evaluation or goes on), "
       "so another float path moves accuracies, losses and step counts far; bands wide")
REGRESS = [
    ("trainable_params", 0.0, 0.0), ("rung_params", 0.0, 0.0), ("diverged", 0.0, 0.0), ("chance", 1e-9, 0.0),
    ("x2_*", 0.0, 1e-9, "the memory model on meta configs: arithmetic"),
    ("accuracy", 0.35, 0.0, WHY), ("test_answer_loss", 3.0, 0.0, WHY), ("val_loss_best", 3.0, 0.0, WHY),
    ("final_train_loss", 3.0, 0.0, WHY), ("steps_used", 100.0, 0.0, WHY), ("best_step", 100.0, 0.0, WHY),
    ("steps_to_target", 100.0, 0.0, WHY),
    ("stopped_early", 1.0, 0.0, "a 0/1 flag that can flip with one evaluation"),
    ("still_improving_at_cap", 1.0, 0.0, "a 0/1 flag that can flip with one evaluation"),
    ("reached_target", 1.0, 0.0, "a 0/1 flag that can flip with one evaluation"),
    ("x3_*", 1.0, 0.0, WHY), ("x1_*", 1.0, 0.0, WHY), ("x4_*", 1.0, 0.0, WHY), ("x5_*", 1.0, 0.0, WHY),
    ("conv_*", 100.0, 0.0, "counts of flags (reported)"), ("adapt_*", 100.0, 1.0, WHY),
    ("design_power", 0.02, 0.0, "a seeded simulation (400 reruns): a float-path change can flip a rerun at a boundary"),
    ("design_needed_*", 0.0, 0.15, "a bisection over the same simulation, to about 5%"),
]


@dataclass(frozen=True)
class Settings:
    rung: str = "cpu-0.1m"                        # the ladder rung every arm fine-tunes
    runs: tuple[tuple[str, int], ...] = (("lora", 1), ("qlora", 1), ("dora", 1), ("pissa", 1), ("loraplus", 1))
                                                  # (arm, rank); X3's "most at low rank" adds (lora, 2), (dora, 2)
    seeds: int = 8                                # seeds per arm (0..seeds-1), sized by the design (design.py)
    lr: float = 1e-2                              # peak AdamW lr of every arm: LoRA's pick in the pilot (rank 1,
                                                  # lowest final validation loss of 1e-3 / 3e-3 / 1e-2 / 3e-2;
                                                  # noise.json) ; LoRA+: A's
    loraplus_lr: float = 1e-3                     # LoRA+'s A lr: its own pick in the pilot (3e-4 / 1e-3 / 3e-3 / 1e-2; at
                                                  # LoRA's 1e-2, B's 0.16 never reached the target: noise.json)
    loraplus_ratio: float = 16.0                  # LoRA+: lr_B / lr_A (Hayou et al. 2024: 2^4)
    alpha: float = LORA_ALPHA                     # LoRA scaling numerator, every arm (scaling alpha / r)
    steps: int = 1500                             # cap
    batch: int = 32
    eval_every: int = 25
    patience: int = 6
    min_delta: float = 1e-3
    min_frac: float = 0.25
    warmup: int = 50
    n_per_person: int = 4
    target_loss: float = 1.5                      # nats/token: the validation answer loss `steps_to_target` waits for
    memory: bool = True                           # X2: the memory model on the LLaMA-65B config
    workers: int = 2


SETTINGS = {
    # CI / regression: one smoke rung, short caps; numbers are the machinery's, not evidence
    "smoke": Settings(rung="smoke-a", runs=(("lora", 1), ("qlora", 1), ("dora", 1), ("pissa", 1), ("loraplus", 1)),
                      seeds=2, steps=60, batch=16, eval_every=10, patience=3, warmup=5, n_per_person=2,
                      target_loss=3.0, workers=1),
    "cpu": Settings(),
    # where a rung leaves LoRA room at rank 2 too (X3's second part); the rung and seeds want a pilot of their own
    "gpu": Settings(rung="cpu-5m", seeds=10, runs=Settings().runs + (("lora", 2), ("dora", 2))),
}


def settings_for(ctx: RunContext) -> Settings:
    """The profile's settings with ctx.options["settings"] applied; BenchError (one line) on a bad value."""
    s = settings_with_overrides(ctx, SETTINGS, GROUP)
    bad = [a for a, _ in s.runs if a not in ARMS]
    if bad or not s.runs:
        raise BenchError(f"beyond: unknown arm(s) {bad or '(none given)'}; choose from {', '.join(ARMS)}")
    if any(not isinstance(r, int) or r < 1 for _, r in s.runs) or len(set(s.runs)) != len(s.runs):
        raise BenchError(f"beyond: runs are distinct (arm, rank >= 1) pairs, got {s.runs!r}")
    if min(s.seeds, s.steps, s.batch, s.eval_every, s.patience, s.n_per_person, s.workers) < 1:
        raise BenchError("beyond: seeds, steps, batch, eval_every, patience, n_per_person and workers must be >= 1")
    if not (s.lr > 0 and s.loraplus_lr > 0 and s.loraplus_ratio > 0 and s.target_loss > 0 and s.min_delta >= 0 and 0 <= s.min_frac <= 1):
        raise BenchError("beyond: lr, loraplus_lr, loraplus_ratio and target_loss must be > 0, min_delta >= 0, min_frac in [0, 1]")
    return s


RANGES = {
    "min_delta": Range(0, 1, zero="any decrease of the validation loss counts as an improvement"),
    "min_frac": Range(0, 1, zero="early stopping may stop at any evaluation"),
    "warmup": NONNEG_COUNT,
}


def lr_of(s: Settings, arm: str) -> float:
    """The peak lr an arm trains at (LoRA+: A's; B's is loraplus_ratio times it)."""
    return s.loraplus_lr if ARMS[arm][1] else s.lr
