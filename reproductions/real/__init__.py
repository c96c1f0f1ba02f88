"""A real pretrained model on real text: all-MiniLM-L6-v2 + Rotten Tomatoes sentiment (claims L4, A1, P2, L5,
A2, L3, Q4, Q5 at scale `real`).

Task: binary sentiment of critic snippets (bench.data.rotten_tomatoes: split by movie with a stated seed, then
seeded subsamples per profile). Model: MiniLM's encoder, mean-pooled, with a linear head (bench.realmodel); the
head trains for every method, full fine-tuning trains everything. Methods: full, lora, rslora, adapters,
prefix, prompt, ptuning, bitfit (ours, bench.methods; the suite's presets with this group's overrides), each on
every seed, plus a LoRA rank sweep.

Training (training.py): bench.train.train with a constant lr after a short warmup; the validation split is scored
every `eval_every` steps and a run stops when validation accuracy has not improved for `patience` evaluations, or
at the cap `max_steps`; the best checkpoint (by validation accuracy, then loss) is restored and scored on test.
A run whose last evaluation was still its best at the cap is flagged (`still_improving_at_cap`, measured).
The runs are bench.jobs jobs (jobs.py), in this process or in one-thread workers, results in plan order.
Accuracy intervals: 95% bootstrap over test items and seeds (both resampled), fixed generator.
Training memory: weights + gradients + AdamW states of the trainable parameters + activations saved for
backward on one batch of `memory_batch` rows x `memory_tokens` tokens (bench.probes.SavedTensors, storages
deduplicated), deterministic. Step time (timings.csv): median wall time of an optimizer step.

Outliers and int8 (Q5, Q4): the census (census.py, bench.numerics.ln_census) reads the LayerNorm outputs that
feed a Linear (embeddings -> q/k/v, attention output -> FFN input, FFN output -> next q/k/v: 12 of MiniLM's 13)
on test snippets (real tokens only). Int8 (quant.py; bench.numerics.int8_linear, every Linear but the head) on
the fully fine-tuned seed-0 model: test accuracy, mean KL(fp32 || int8) of the class distribution, and the mean
cosine of the pretrained encoder's mean-pooled embeddings; bitsandbytes' Linear8bitLt(threshold =
LLM_INT8_THRESHOLD = 6) is the reference.

Files: settings.py (contract names, bands, profiles, method settings), training.py, evaluate.py, jobs.py,
rows.py, census.py, quant.py, run.py, report.py.
"""

from reproductions.real.evaluate import bootstrap_ci
from reproductions.real.report import report
from reproductions.real.run import run
from reproductions.real.settings import (CLAIMS, CONFIG, GROUP, LR, METHODS, REGRESS, SCALE, SETTINGS, Settings,
                                         method_config, settings_for)

__all__ = ["CLAIMS", "CONFIG", "GROUP", "LR", "METHODS", "REGRESS", "SCALE", "SETTINGS", "Settings",
           "bootstrap_ci", "method_config", "report", "run", "settings_for"]
