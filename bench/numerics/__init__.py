"""Number formats and int8 quantizers, pure torch (claims M1-M3, Q1-Q6).

- `formats`: FP32 / FP16 / BF16 / TF32 from their bit layouts (checked against torch.finfo).
- `accounting`: bytes-per-parameter arithmetic (BLOOM-176B serving / fine-tuning, int8 weight bytes).
- `quant`: fixed-range, absmax and zero-point quantizers; exact int8 x int8 -> int32 product; vector-wise
  and LLM.int8() products in functional form.
- `int8_linear`: `Int8Linear.from_float(linear, method=, threshold=)` and `quantize_model(model, ...)`.
- `outliers`: outlier-feature census and `plant_outliers`.
- `toy`: a tiny GPT-2 and Markov-chain tokens, stand-ins until the ladder is wired in.
"""
