"""What the serving group runs: its names, regression bands, and P4's settings per profile.

Trade-offs, per profile (cost: len(requests) x 2 methods x `pairs` ABBA pairs of one serving window each):
- smoke: the gate's run on the smoke ladder's largest rung, short rows and 3 pairs: seconds, and enough to check
  the equivalence and the rows' shape (the gate compares no timings);
- cpu: the cpu ladder's largest rung (cpu-5m), K = 3 tasks, rows of 64 tokens, 15 pairs per point: about a
  minute of timings. 64 tokens is a short request (a sentence or two), long enough that a 20-token soft prompt
  is a real cost (+31% tokens per row), short enough that the window's batch size still matters on a CPU;
- gpu: the gpu ladder's largest rung, longer rows and larger windows; still timed on the CPU (the group moves
  nothing to a GPU yet: a GPU serving setup, where the claim's regime lives, is left to a later issue).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.methods.lora import LORA_ALPHA, LORA_R
from bench.values import Range

GROUP = "serving"
CLAIMS = ("P4",)
# `bench regress` (smoke profile): the equivalence is exact up to float summation order (P4's rule: 1e-4, see its
# history), the parameter ratio is arithmetic; timings are not compared.
REGRESS = [
    ("p4_*_max_abs_diff", 1e-4, 0.0, "P4's tolerance: the mixed batch runs the base layers at another row count, "
                                     "and AVX2 kernels then sum in another order (1.001e-05 on an AMD EPYC)"),
    ("p4_serving_params_ratio", 1e-9, 1e-9),
]


@dataclass(frozen=True)
class Settings:
    rung: str = "largest"              # the frozen model: a ladder rung, or "largest" of the profile's ladder
    tasks: int = 3                     # K: tasks served at once, each with its own soft prompt / LoRA adapter
    seq_len: int = 64                  # T: every throughput row has exactly T tokens (one length bucket)
    requests: tuple[int, ...] = (1, 4, 16)   # n: requests per task in one serving window (K * n rows); n = 1 decides
    prompt_len: int = 20               # soft prompt length (Lester et al. 2021 use 5-150; 20 is the scale group's)
    lora_r: int = LORA_R               # the suite's LoRA preset (capped at the width)
    lora_alpha: float = LORA_ALPHA
    eq_rows: int = 8                   # equivalence rows per task, lengths spread over T/2..T (padding exercised)
    pairs: int = 15                    # ABBA pairs per timed comparison (bench.timing.abba)


SETTINGS = {
    "smoke": Settings(seq_len=16, requests=(1, 4), eq_rows=3, pairs=3),
    "cpu": Settings(),
    "gpu": Settings(seq_len=128, requests=(1, 8, 64), pairs=21),
}

RANGES = {   # --set checks (bench.values); fields not named here take their type's default (int >= 1)
    "tasks": Range(2, 64),
    "seq_len": Range(2, 4096),
}
