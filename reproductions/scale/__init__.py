"""Scale group: claims P1, P2, P3 and A1. As the frozen model grows, do the lightweight methods catch up
with full fine-tuning? (Lester et al. 2021 Fig. 1, https://arxiv.org/abs/2104.08691; Li & Liang 2021,
https://arxiv.org/abs/2101.00190; Liu et al. 2021, https://arxiv.org/abs/2103.10385; Houlsby et al. 2019,
https://arxiv.org/abs/1902.00751.)

The sweep: every rung of the profile's ladder (or every checkpoint of `--model a,b,c`) x METHODS x three tasks
x seeds, each run ONE call of `bench.train.train` (same AdamW loop, warmup + cosine schedule, clipping and
batching for every method), plus the zero-shot "prompt design" baseline (a hand-written prompt, no training).
Every run trains until its validation answer loss stops improving (issue 14: `patience` evaluations without a
drop of more than `min_delta`, under a cap of 10x the old fixed budget or more; the best evaluation's weights are
kept; Settings.caps gives a method a longer cap on some rungs); steps used, the flags "stopped early" / "still improving at the cap", the training loss at the kept step,
the best validation loss and the loss curves are recorded per run.
- nextmonth (decides P1, P3, A1): `next_month_task`: "<made-up name> celebrates a birthday in May . new month :" ->
  "June"; the frozen model cannot do it (a precondition checks it on every rung), so small models must be changed
  to do it, as in Lester et al.'s SuperGLUE. The hand-written prompt is `n_shots` worked examples + the task's cue
  on the frozen model. P3's ablations run on it (Settings.ablation_task).
- knowledge (reported): `knowledge_task(fmt="table")` over all five attributes, "name : {n} |
  city :" -> the value; tuned on the world's train people, scored on its test people. The frozen model already
  scores near full FT here (it recalls what it stored), so it cannot show what adaptation buys. Its hand-written
  prompt baseline is fmt="discrete" ("the city where {n} was born is") on the frozen model.
- d2t (decides P2, A1's second part): `data_to_text_task`: attribute table -> one sentence (the E2E analogue);
  greedy decoding, BLEU on test people; in the cpu profile on the largest rung only, without prompt tuning and
  P-tuning (Settings: the cpu budget). Its zero-shot baseline is the frozen model given the task's own prompt.
Method settings (the papers' where the brief fixes them): prefix length 10 with the MLP reparameterisation
(hidden 512), folded after training; prompt tuning length 20, class-label init (the attributes' values,
interleaved); P-tuning length 20 with the paper's bidirectional-LSTM encoder, folded after training; LoRA
r = 8, alpha = 16 on the family default (GPT-2: c_attn); adapters of size d/16 (BERT-Large's 64/1024, the
paper's 2.1% setting), layer norms trained; BitFit: biases only.

Learning rates: per method a small grid (LR_GRIDS; prompt methods get far larger rates than full FT), searched on
the smallest and the largest rung with the first seed, per task, selected on the world's VALIDATION people
(classification: accuracy, ties by loss; d2t: teacher-forced loss); a pick on an edge of the points tried adds the
next point past it (x3 or /3, `extend` times per side), so the pick ends inside the grid where it can. Every
point is a full run (early stopping) and a row (lr_search_*); the pick's run is the sweep's seed-0 run. The rungs
between take the pick of the search rung nearer in log parameters. ctx.options["lrs"] = {method: lr} skips the
search. Pretraining spread: the middle rung is pretrained a second time from seed 1 ("<rung>-s1") and its full FT
and prompt tuning runs repeated, so the report puts the between-pretraining change of the gap beside the
fine-tuning seed spread. Finished runs are kept in a job cache (reproductions.scale.jobs; off in the smoke
profile): a stopped cpu run resumes where it was.
Paper scale: `--model a,b,c` takes checkpoints (folders or cached hub ids) in place of the ladder; the knowledge
task needs one-token answers and is skipped (with a note) for tokenizers that split them; a user's E2E copy
replaces the world's data-to-text task via ctx.options["d2t_data"] or $BENCH_SCALE_D2T (`d2t_from_disk`).

Beside the sweep: P2's low-data run (prefix vs full FT on d2t with few training rows, cpu: 50 and 100, largest
rung, Li & Liang Sec. 6.3); P3's ablations on the ablation rungs (cpu: the smallest) (prompt length 1/5/20/100
with class-label init; init random uniform / sampled vocabulary / class labels at length 20; cpu: lengths 1 and 20,
inits random and labels). P4 (mixed-task batches) was measured here until 2026-12-07; it is now the serving group
(reproductions/serving), which times one serving window at equal work instead of batches padded to different
lengths.

Rows: per run (claim "-", the sweep serves several claims), then derived metrics per claim (`derive`), which
the registry's Checks decide on. Sizes: Settings docs. Every ladder row is scale "toy"; rows from a user
checkpoint (--model) are "paper".

Files: settings.py (constants, the typed settings per profile), models.py (rungs, tasks, method settings),
fitting.py (one run with early stopping, zero-shot baselines, the lr search's choice), jobs.py (the units of work
for bench.jobs.JobRunner, and their cache), run.py (the recipe, phase by phase), derive.py (the metrics the
registry decides on), report.py (report.md, summary.csv, PNGs).
"""


from reproductions.scale.derive import DERIVED_MEASURED, _ratio, derive, runs_frame, spearman, stats
from reproductions.scale.fitting import choose
from reproductions.scale.models import _interleave, d2t_from_disk, load_rung, method_kwargs
from reproductions.scale.report import report, summary_table, write_report
from reproductions.scale.run import run
from reproductions.scale.settings import (CLAIMS, GROUP, LR_GRIDS, METHODS, METRIC, REGRESS, SETTINGS, SMOKE_GRIDS,
                                          TASKS, TREND_RUNGS, ZERO_SHOT, Settings, ablation_configs, cap_for, grid, seeds_in,
                                          settings_for)

__all__ = ["CLAIMS", "DERIVED_MEASURED", "GROUP", "LR_GRIDS", "METHODS", "METRIC", "REGRESS", "SETTINGS", "SMOKE_GRIDS",
           "TASKS", "TREND_RUNGS", "ZERO_SHOT", "Settings", "_interleave", "_ratio", "ablation_configs", "cap_for", "choose", "d2t_from_disk",
           "derive", "grid", "load_rung", "method_kwargs", "report", "run", "seeds_in",
           "runs_frame", "settings_for", "spearman", "stats", "summary_table", "write_report"]
