"""rsLoRA group: claim L7 (Kalajdzievski 2023, "A Rank Stabilization Scaling Factor for Fine-Tuning with LoRA",
https://arxiv.org/abs/2312.03732).

LoRA adds s * B A to a frozen weight, with s = alpha / r (Hu et al. 2021). The claim: with s = alpha / r a
larger rank learns no better, because the adapter's gradients (and so its effective steps) shrink as r
grows; s = alpha / sqrt(r) ("rank-stabilised", peft's `use_rslora`) keeps learning stable, so larger ranks help.

The sweep (sweep.py): one ladder rung, the data-to-text task (table in, sentence out, loss on the sentence), LoRA
on the family's default targets (GPT-2: the fused q,k,v `c_attn`) at ranks r in RANKS (those <= the targets'
min(in, out)), once with alpha / r ("lora") and once with alpha / sqrt(r) ("rslora"), the same alpha, steps and
learning rate for all, over the profile's seeds and two learning rates (the first decides the slope and gradient checks, the
second shows whether the result is an artefact of one). Then each scaling gets its own lr at every rank
(tune.py): searched on seed 0 by the final validation loss, every seed run at the pick ("tuned"), since under
alpha/r a larger rank is also a smaller effective step and one shared lr can favour either scaling. Every run
uses `bench.train.train`; the runs are independent jobs (bench.jobs) whose rows are recorded in plan order. The
seed fixes A's init and the batch order, so LoRA and rsLoRA at the same (r, seed) start from the same A and see
the same batches.

What is recorded per optimizer step (curves.csv) is defined in measure.py: the raw gradient norms of A and B,
the first-order and the actual per-step change of the effective update s B A, the train loss and every
`eval_every` steps the held-out loss (token-weighted NLL on the task's test people, who never appear in the
fine-tuning data; no choice is made on them: the lr search scores on the validation people).
results.csv holds one row per run and metric (final losses, step-means of the norms, the scaling read from
the modules), the derived metrics the registry's checks decide on (derive.py; main/second runs only), and the
search's points, picks and L7's precondition (tune.py).

Files: settings.py (names, regression bands, settings per profile), measure.py (one run and its norms),
runs.py (a run as a job, and its rows), sweep.py (the plan, the env, run), tune.py (the per-rank lr search),
derive.py (derived metrics), report.py and figures.py (report.md, PNGs).
"""

from reproductions.rslora.derive import cross_lr, derive, per_rank
from reproductions.rslora.measure import UpdateTracker, expected_scaling, train_one
from reproductions.rslora.report import report
from reproductions.rslora.settings import CLAIMS, CURVE_COLUMNS, GROUP, METHODS, RANKS, REGRESS, SETTINGS, Settings
from reproductions.rslora.sweep import run

__all__ = ["GROUP", "CLAIMS", "REGRESS", "SETTINGS", "Settings", "METHODS", "RANKS", "CURVE_COLUMNS", "run", "report",
           "expected_scaling", "UpdateTracker", "train_one", "derive", "cross_lr", "per_rank"]
