"""Number formats and int8 quantizers, pure torch (claims M1-M3, Q1-Q6).

- `formats`: FP32 / FP16 / BF16 / TF32 from their bit layouts (checked against torch.finfo).
- `accounting`: bytes-per-parameter arithmetic (BLOOM-176B serving / fine-tuning, int8 weight bytes).
- `quant`: fixed-range, absmax and zero-point quantizers; exact int8 x int8 -> int32 product; vector-wise
  and LLM.int8() products in functional form.
- `int8_linear`: `Int8Linear.from_float(linear, method=, threshold=)` and `quantize_model(model, ...)`.
- `outliers`: outlier-feature census and `plant_outliers` (ln_2 only; `plant_outliers_all_ln`: every LayerNorm
  output that feeds a Linear, at the paper's magnitudes).
- `ln_census`: census of the LayerNorm outputs that feed a Linear (share |x| >= 6, top magnitudes, kurtosis).
- `degradation`: KL(p_fp32 || p_int8) per token, answer-token NLL and accuracy on a knowledge task.
- `toy`: a tiny GPT-2 and Markov-chain tokens, stand-ins until the ladder is wired in.
"""
