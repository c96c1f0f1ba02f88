"""What the precision group runs: its names, regression bands, and M3's training settings per profile.

M1 and M2 are exact and have no settings. M3 trains one tiny GPT-2 per (seed, precision) on Markov-chain
tokens (bench.numerics.toy). Trade-offs, per profile (cost: seeds x 4 precisions x `steps` optimizer steps):
- smoke: the gate's run; one layer of width 32 and 30 steps, so four precisions x the seeds take seconds;
- every profile also reruns FP32 / FP16 / FP16 + loss scaling in the underflow regime (M3's 'loss scaling
  needed': 3 more runs per seed);
- cpu: the full toy run (2 layers, width 64, 150 steps; about a minute on one thread): long enough for the
  losses to separate from their start, small enough that CPU autocast's casts do not dominate the wall time;
- gpu: a wider, deeper model and more steps, where autocast's speed half of M3 could show.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.numerics.toy import MarkovData, ToyLMConfig
from bench.values import LEARNING_RATE, Range

GROUP = "precision"
CLAIMS = ("M1", "M2", "M3")
TAKES_MODEL = False   # fixed configs: `--model` is refused before any work (bench.cli.run_group)
REGRESS = [
    ("format_*", 0.0, 1e-9), ("fp16_overflows", 0.0, 0.0), ("update_survives", 0.0, 0.0),
    ("bloom_*", 0.0, 1e-9), ("finetune_*", 0.0, 1e-9),
    ("m3_final_loss*", 0.0, 0.05), ("m3_saved_bytes*", 0.0, 0.02),
    ("m3_grad_*", 0.01, 0.5), ("m3_train_loss", 0.0, 0.1),
]
PRECISIONS = ("fp32", "bf16", "fp16", "fp16_scaled")
# torch.autocast dtype per precision (bench.train.TrainConfig.autocast); fp16_scaled adds a GradScaler
AUTOCAST = {"fp32": None, "bf16": "bfloat16", "fp16": "float16", "fp16_scaled": "float16"}


@dataclass(frozen=True)
class Settings:
    model: ToyLMConfig
    steps: int                      # optimizer steps; one fresh batch per step (data never repeats)
    batch_size: int                 # sequences of model.seq_len tokens per step
    eval_batches: int = 4           # held-out batches for the final loss (evaluated in FP32)
    lr: float = 3e-3                # AdamW peak lr, cosine to 0 over `steps` (torch CosineAnnealingLR)
    loss_scale: float = 2.0**16     # GradScaler's initial scale (dynamic afterwards)
    measure_every: int = 10         # gradient-underflow census and loss logging every N steps (and the last)
    # M3's underflow regime: FP32, FP16 and FP16 + loss scaling rerun with the training loss times this (a model
    # whose gradients are small). Picked by its flushed share in a one-step pilot on the cpu model, before any
    # training: 2^-12 flushes 20% of the nonzero gradient values in FP16, 2^-16 73%, 2^-20 99.9%. AdamW is
    # invariant to the gradient's scale up to eps (1e-8), so FP32 training is nearly unchanged; 1 turns it off.
    underflow_loss_multiplier: float = 2.0**-16
    data: MarkovData = MarkovData()


SETTINGS = {
    "smoke": Settings(ToyLMConfig(vocab=128, seq_len=32, d_model=32, n_layer=1, n_head=2), steps=30, batch_size=8),
    "cpu": Settings(ToyLMConfig(vocab=128, seq_len=64, d_model=64, n_layer=2, n_head=4), steps=150, batch_size=16),
    "gpu": Settings(ToyLMConfig(vocab=512, seq_len=128, d_model=256, n_layer=4, n_head=8), steps=400, batch_size=32),
}


RANGES = {   # --set checks (bench.values); fields not named here take their type's default (int >= 1, float > 0)
    "lr": LEARNING_RATE,
    "loss_scale": Range(1, 2.0**64),
    "underflow_loss_multiplier": Range(0, 1, lo_open=True),    # 1: no underflow regime runs
}
