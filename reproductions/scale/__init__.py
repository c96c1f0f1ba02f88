"""Scale group: claims P1, P2, P3, P4 and A1. As the frozen model grows, do the lightweight methods catch up
with full fine-tuning? (Lester et al. 2021 Fig. 1, https://arxiv.org/abs/2104.08691; Li & Liang 2021,
https://arxiv.org/abs/2101.00190; Liu et al. 2021, https://arxiv.org/abs/2103.10385; Houlsby et al. 2019,
https://arxiv.org/abs/1902.00751.)

The sweep: every rung of the profile's ladder (or every checkpoint of `--model a,b,c`) x METHODS x two tasks
x seeds, each run ONE call of `bench.train.train` (same AdamW loop, warmup + cosine schedule, clipping and
batching for every method), plus the zero-shot "prompt design" baseline (a hand-written prompt, no training).
- knowledge: `knowledge_task(fmt="table")` over all five attributes, "name : {n} | city :" -> the value; tuned
  on the world's train people, scored on its test people (accuracy over the attribute's candidate values).
  The table form is the raw input with a field name (like SuperGLUE's text-to-text format); the hand-written
  prompt baseline is fmt="discrete" ("the city where {n} was born is") on the frozen model.
- d2t: `data_to_text_task`: attribute table -> one sentence (the E2E analogue); greedy decoding, BLEU on test
  people. Its zero-shot baseline is the frozen model given the task's own prompt ("<table> sentence :").
Method settings (the papers' where the brief fixes them): prefix length 10 with the MLP reparameterisation
(hidden 512), folded after training; prompt tuning length 20, class-label init (the attributes' values,
interleaved); P-tuning length 20 with the paper's bidirectional-LSTM encoder, folded after training; LoRA
r = 8, alpha = 16 on the family default (GPT-2: c_attn); adapters of size d/16 (BERT-Large's 64/1024, the
paper's 2.1% setting), layer norms trained; BitFit: biases only.

Learning rates: per method a small grid (LR_GRIDS; prompt methods get far larger rates than full FT), searched
once on one rung (the middle one) with the first seed, per task, and selected on the world's VALIDATION
people (knowledge: accuracy, ties by loss; d2t: teacher-forced loss). Every grid point is a row
(lr_search_*); the choice is cached per (model, method, task, grid, settings) under $BENCH_CACHE/scale/, so
the sweep and later runs reuse it. ctx.options["lrs"] = {method: lr} skips the search.
Paper scale: `--model a,b,c` takes checkpoints (folders or cached hub ids) in place of the ladder; the knowledge
task needs one-token answers and is skipped (with a note) for tokenizers that split them; a user's E2E copy
replaces the world's data-to-text task via ctx.options["d2t_data"] or $BENCH_SCALE_D2T (`d2t_from_disk`).

Beside the sweep: P2's low-data run (prefix vs full FT on d2t with 50/100/200/500 training rows, largest rung,
Li & Liang Sec. 6.3); P3's ablations at two rungs (prompt length 1/5/20/100 with class-label init; init random
uniform / sampled vocabulary / class labels at length 20); P4: one forward pass over a batch mixing tasks, each
example with its own soft prompt (and, separately, its own LoRA adapter; bench.methods.multitask's prompt_bank and
multi_lora), equals each task's own model to 1e-5, and its throughput vs one batch per task (timings.csv). That
throughput ratio mostly measures padding: the mixed batch pads every row to the longest row of any task (d2t), the
per-task batches only to their own task's longest; the cost of the mixing itself is measured in the methods benchmark
(mixed_batch_throughput_over_single_task, same rows and length on both sides).

Rows: per run (claim "-", the sweep serves several claims), then derived metrics per claim (`derive`), which
the registry's Checks decide on. Sizes: Settings docs. Every ladder row is scale "toy"; rows from a user
checkpoint (--model) are "paper"; P4's equivalence and accounting rows are "exact".

Files: settings.py (constants, the typed settings per profile), models.py (rungs, tasks, method settings),
fitting.py (one run, zero-shot baselines, the lr search's choice and cache), jobs.py (the units of work for
bench.jobs.JobRunner), run.py (the recipe, phase by phase), p4.py (mixed-task batches), derive.py (the metrics the
registry decides on), report.py (report.md, summary.csv, PNGs).
"""


from reproductions.scale.derive import DERIVED_MEASURED, _ratio, derive, runs_frame, spearman, stats
from reproductions.scale.fitting import choose
from reproductions.scale.models import _interleave, d2t_from_disk, load_rung, method_kwargs
from reproductions.scale.p4 import max_abs_diff_real, p4_equivalence, pad
from reproductions.scale.report import report, summary_table, write_report
from reproductions.scale.run import run
from reproductions.scale.settings import (CLAIMS, GROUP, LR_GRIDS, METHODS, METRIC, REGRESS, SETTINGS, SMOKE_GRIDS,
                                          TASKS, ZERO_SHOT, Settings, ablation_configs, settings_for)

__all__ = ["CLAIMS", "DERIVED_MEASURED", "GROUP", "LR_GRIDS", "METHODS", "METRIC", "REGRESS", "SETTINGS", "SMOKE_GRIDS",
           "TASKS", "ZERO_SHOT", "Settings", "_interleave", "_ratio", "ablation_configs", "choose", "d2t_from_disk",
           "derive", "load_rung", "max_abs_diff_real", "method_kwargs", "p4_equivalence", "pad", "report", "run",
           "runs_frame", "settings_for", "spearman", "stats", "summary_table", "write_report"]
