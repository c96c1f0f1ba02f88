"""Performance of our PEFT methods (bench.methods): supporting measurements, no verdicts.

Measured side by side in ONE process, round-robin (each round runs every variant once, in a rotated order;
bench.timing), medians over rounds, on GPT-2 configs with random weights:
1. training step (forward + backward + AdamW + zero_grad, batch x seq tokens) of every registered method
   (bench.methods.registry), and its ratio to full fine-tuning; each method that peft also has (its SPEC.peft)
   vs peft's counterpart with the same settings ("peft-<method>"; LoRA: r = 8, alpha = 16 on c_attn, no
   dropout on the branch): ratio ours/peft, target <= 1.05 (steps.py).
2. memory per method relative to full FT: (a) tensor accounting after one step (weights, gradients, AdamW
   states, activations saved for backward), deterministic -> results.csv; (b) the measured peak RSS growth
   of a fresh model's step (a 1 ms sampling thread; process-dependent -> timings.csv) (memory.py).
3. inference latency (eval, no_grad forward) of the base model, unmerged LoRA and merged LoRA
   (merge_and_unload): merged/base target within 3% (L5: merging removes the overhead), unmerged/base is
   the overhead that merging removes (inference.py).
4. multi-task serving (bench.methods.multitask): a batch mixing K tasks, each row with its own LoRA adapter
   (multi_lora) or soft prompt (prompt_bank), vs a single-task batch of the same size through the plain
   single-adapter model (LoRA: bench.methods.lora; prompt: bench.methods.prompt): throughput ratio
   single time / mixed time, target >= 0.95, rows interleaved by task (the hardest order), ABBA pairs (mixed.py).
5. our quantized Linears beside bitsandbytes' on the same weights and inputs: LLM.int8() (threshold 6) vs
   Linear8bitLt, target ours / bitsandbytes' latency <= 1.0 at an error no larger; NF4 with double quantization
   vs Linear4bit, latency and error (quantizers.py).
The targets (ours/peft step, merged/base forward, mixed/single throughput, ours/bitsandbytes') are judged on a second measurement:
the two sides alternately in ABBA pairs (`pair_rounds` pairs, bench.timing.abba), ratio of the medians, with the
per-pair ratios' quartiles beside it. In the round-robin one variant always follows the same other, and a
GPT-2-small step varies by ~8% round to round here, more than the 5% margin; the round-robin ratio is kept as a
second row. Every timing row records torch's thread count and the 1-minute load average: timings taken next to
other busy processes are contaminated (see ../shared/machine-notes.md) and only ratios within one run mean much.
Rows carry claim "-"; `params.supports` names the claim (L5, A2, P4) a row speaks to.

Files: settings.py (contract names, targets, profiles), models.py (the variants), steps.py, memory.py,
inference.py, mixed.py, quantizers.py (the five parts), run.py, report.py.
"""

from reproductions.methods.report import report
from reproductions.methods.run import run
from reproductions.methods.settings import (CLAIMS, GROUP, METHODS, PEFT_METHODS, REGRESS, SETTINGS, TAKES_MODEL,
                                            TARGET_MERGED_OVER_BASE, TARGET_MIXED_THROUGHPUT, TARGET_OURS_OVER_PEFT,
                                            TARGET_QUANT_OURS_OVER_BNB,
                                            ModelSpec, Settings, method_kwargs)

__all__ = ["CLAIMS", "GROUP", "METHODS", "PEFT_METHODS", "REGRESS", "SETTINGS", "TAKES_MODEL",
           "TARGET_MERGED_OVER_BASE", "TARGET_MIXED_THROUGHPUT", "TARGET_OURS_OVER_PEFT",
           "TARGET_QUANT_OURS_OVER_BNB", "ModelSpec", "Settings",
           "method_kwargs", "report", "run"]
