"""Serving group: claim P4 (Lester et al. 2021, "The Power of Scale for Parameter-Efficient Prompt Tuning", Sec. 1
and Fig. 2, https://arxiv.org/abs/2104.08691; Hu et al. 2021, LoRA, Sec. 4).

The claim: with prompt tuning, examples of different tasks, each with its own prompt, are batched through one
frozen model, using serving resources better than one tuned model per task. Three parts:
- same outputs (exact): a batch mixing tasks, each row with its own soft prompt (and, separately, its own LoRA
  adapter), gives each row the logits that row's task gives alone (bench.methods.multitask);
- serving parameters (exact): one frozen model and K task parts hold fewer parameters than K tuned models;
- throughput (toy, timings.csv): one serving window of K x n requests, every row the same length, through the
  frozen model with per-example parts in one call, against K tuned models (each its own weights) with one call
  of n rows each; decided at one request per task (n = 1), where one model per task must run K batches of one
  and the mixed batch can run one. Precondition: batching itself pays on this machine at that window (one plain
  model, K calls of one row against one call of K rows, >= 1.2x); where it does not, the CPU gives no regime
  in which mixing tasks could gain, and the part is inconclusive, not "not reproduced".

Until 2026-12-07 P4 was measured in the scale group, on one mixed batch padded to its longest row against
per-task batches padded to their own: that ratio measured padding (issue 31). The frozen model is the
profile's largest ladder rung (cpu: cpu-5m) or --model's checkpoint; the task parts are untrained but distinct
(sampled-vocabulary prompts, LoRA B ~ N(0, 0.02)): their values change no cost, and a row routed to the wrong
task moves the logits by > 1e-2 (tests/reproductions/serving).

Files: settings.py (names, regression bands, settings per profile), measure.py (the equivalence, the parts, the
tuned models, the timed windows), run.py (the recipe), report.py (report.md and throughput.png).
"""

from reproductions.serving.measure import (batching_gain, max_abs_diff_real, mixed_models, p4_equivalence, pad,
                                           serving_throughput, task_parts, tuned_models, window)
from reproductions.serving.report import report
from reproductions.serving.run import run
from reproductions.serving.settings import CLAIMS, GROUP, REGRESS, SETTINGS, Settings

__all__ = ["GROUP", "CLAIMS", "REGRESS", "SETTINGS", "Settings", "run", "report", "pad", "max_abs_diff_real",
           "p4_equivalence", "task_parts", "tuned_models", "mixed_models", "window", "serving_throughput",
           "batching_gain"]
