"""Claims of the lecture: mixed precision and float formats (group: precision).

Data only: each `register(Claim(...))` is one claim; its machine rule is `checks` / `preconditions`, its
`rule=` text the design rationale the machine form cannot say. History: `history.toml` beside this file.
"""

from __future__ import annotations

import math

from .model import Check, Claim, Effect, R, W
from .registry import register

register(Claim(
    id="M1", family="precision", title="Float formats trade range against precision",
    statement="FP32 8/23, FP16 5/10, BF16 8/7, TF32 8/10 exponent/significand bits. FP16 cannot hold values past "
              "~65,504 (the lecture: 'about 100,000 cannot be represented'); BF16 keeps FP32's range with less precision.",
    published="FP16 max 65504, min normal 6.1e-5, min subnormal 5.96e-8, eps 9.77e-4; BF16 max 3.39e38, eps 7.81e-3 "
              "(IEEE; torch.finfo). The LLM.int8() paper's '65535' is a typo.",
    scales=("exact",), group="precision",
    metric="format table from bit layouts vs torch.finfo; overflow and update-vanishing demonstrations",
    checks=(
        Check("format_finfo_mismatches", "==", 0, agg="max", note="layout-derived max/min normal/min subnormal/eps/bits == torch.finfo"),
        Check("format_max", "==", 65504, W(**{"params.format": "fp16"})),
        Check("format_min_normal", "~=", 2.0**-14, W(**{"params.format": "fp16"}), rtol=1e-9),
        Check("format_min_subnormal", "~=", 2.0**-24, W(**{"params.format": "fp16"}), rtol=1e-9),
        Check("format_eps", "~=", 2.0**-10, W(**{"params.format": "fp16"}), rtol=1e-9),
        Check("format_max", "~=", 3.3895313892515355e38, W(**{"params.format": "bf16"}), rtol=1e-9),
        Check("format_eps", "~=", 2.0**-7, W(**{"params.format": "bf16"}), rtol=1e-9),
        Check("fp16_overflows", "==", 1, W(**{"params.value": 100000})),
        Check("fp16_overflows", "==", 1, W(**{"params.value": 70000})),
        Check("fp16_overflows", "==", 0, W(**{"params.value": 65504})),
        Check("fp16_overflows", "==", 1, W(**{"params.value": 65535}), note="the paper's '65535' is not even representable"),
        Check("update_survives", "==", 1, W(**{"params.format": "fp32"})),
        Check("update_survives", "==", 0, W(**{"params.format": "fp16"})),
        Check("update_survives", "==", 0, W(**{"params.format": "bf16"})),
    ),
    rule="Exact: the table computed from (exponent, significand) bits equals torch.finfo for FP32/FP16/BF16 (TF32 from "
         "its layout only); 100,000, 70,000 and 65,535 overflow FP16 and 65,504 does not; weight 1.0 + 1e-3 x 1e-2 "
         "changes in FP32 and vanishes in FP16 and BF16.",
))
register(Claim(
    id="M2", family="precision", title="BLOOM-176B: 8 A100s to serve, about 72 to fine-tune",
    statement="BLOOM-176B needs 8 x 80 GB A100 to serve in 16 bit and about 72 to fine-tune (about 9x the memory).",
    published="HF blog 'A Gentle Introduction to 8-bit Matrix Multiplication': 176e9 x 2 B = 352 GB of bf16 weights.",
    scales=("exact",), group="precision",
    metric="memory model: GPUs for bf16 inference and mixed-precision Adam fine-tuning, assumptions printed",
    checks=(
        Check("bloom_bf16_weight_bytes", "==", 352e9, part="accounting", note="176e9 params x 2 bytes"),
        Check("finetune_bytes_per_param", "==", 16, part="accounting", note="2 weights + 2 grads + 4 master + 4 + 4 Adam"),
        Check("bloom_inference_gpus", "~=", 8, W(**{"params.overhead": 0.2}), rtol=0.25, part="serving",
              note="two-sided: the blog's 8 within 25% of the computed count (weights + 20% overhead)"),
        Check("bloom_finetune_gpus", "~=", 72, W(**{"params.overhead": 0.2}), rtol=0.25, part="fine-tuning",
              note="two-sided: the blog's 72 within 25% of the count the 16 B/param states plus the same 20% "
                   "overhead as serving need"),
        Check("bloom_finetune_over_inference_memory", "~=", 9, W(**{"params.overhead": 0.2}), rtol=0.15,
              part="fine-tuning", note="'about 9x': with one overhead for both, the states give 16/2 = 8x"),
    ),
    rule="Exact accounting with the assumptions printed. Part 'accounting': 352 GB of bf16 weights (176e9 x 2 bytes) "
         "and 16 bytes per parameter for mixed-precision Adam (2 weights + 2 grads + 4 master + 4 + 4 Adam states). "
         "Part 'serving': the A100-80GB count for the weights plus an assumed 20% overhead is within 25% of the "
         "blog's 8 (6 to 10). Part 'fine-tuning': the count the 16 B/param states plus the same 20% overhead need "
         "is within 25% of the blog's 72 (54 to 90), and fine-tuning over serving memory (one overhead for both) is "
         "within 15% of 'about 9x' (7.65 to 10.35; the states give 16/2 = 8x). One overhead assumption serves both "
         "counts, so they compare like for like. Both counts are two-sided. The report prints the overhead each "
         "claimed GPU count implies.",
))
register(Claim(
    id="M3", family="precision", title="AMP: less memory and time, same result; FP16 needs loss scaling",
    statement="Forward and backward in 16 bit, weights and optimizer in FP32; less memory and time, same result; small "
              "gradients underflow in FP16 without loss scaling.",
    published="Micikevicius et al. 2018: values below 2^-24 flush to zero in FP16; SSD diverges without loss scaling, "
              "scale 8 matches FP32.",
    scales=("toy",), group="precision",
    metric="final loss, step time, peak memory under FP32 / BF16 / FP16 +- loss scaling; share of gradients flushed to zero",
    checks=(
        Check("m3_saved_bytes_ratio_over_fp32", "<", 0.9, W(method="bf16"), part="memory",
              note="bytes saved for backward (activations and cast weights) under autocast vs FP32"),
        Effect("m3_final_loss", R(method="bf16"), "within", math.log(1.03), b=R(method="fp32"), log=True,
               part="same result", note="BF16 autocast final loss within 3% of FP32's (paired seeds)"),
        Effect("m3_final_loss", R(method="fp16_scaled"), "within", math.log(1.03), b=R(method="fp32"), log=True,
               part="same result", note="FP16 + loss scaling within 3% of FP32's"),
        Effect("m3_underflow_final_loss", R(method="fp16"), "above", math.log(1.03), b=R(method="fp16_scaled"),
               log=True, part="loss scaling needed",
               note="in the underflow regime (the loss multiplied by Settings.underflow_loss_multiplier, 2^-16 on "
                    "every profile: a model whose gradients are small, as in Micikevicius et al.'s SSD), unscaled FP16 "
                    "ends >= 3% worse than FP16 with loss scaling (paper: diverges)"),
        Check("m3_step_time_ratio_over_fp32", "<", 1.0, W(method="bf16"), missing="paper", part="speed",
              note="needs 16-bit units (GPU); this CPU has none"),
    ),
    preconditions=(
        Check("m3_underflow_flush_share_unscaled_minus_scaled", ">=", 0.5, agg="min", part="loss scaling needed",
              note="FP16 really underflows there: on every seed, at least half of the nonzero FP32 gradient values "
                   "flush to zero in FP16 that loss scaling keeps (at the toy's natural gradient scale 0.12% do: no "
                   "underflow regime to test in, so the part is decided in the planted one)"),
    ),
    rule="Toy, >= 3 seeds (paired), differences of log final losses with 95% intervals from the seeds. Part "
         "'memory': autocast (BF16) keeps < 0.9 of FP32's bytes saved for backward (activations and cast weights), "
         "i.e. saves > 10%. Part 'same result': BF16 autocast and FP16 with loss scaling each end with a final loss "
         "whose ratio to FP32's has its interval within 3% (+-log 1.03). Part 'loss scaling needed': unscaled FP16 "
         "ends >= 3% worse than FP16 with loss scaling (interval of the log ratio above log 1.03; the paper: "
         "diverges), in a regime where FP16 really underflows: the training loss multiplied by 2^-16 (AdamW is "
         "invariant to a gradient's scale up to its eps, so FP32 training is nearly unchanged), with the "
         "precondition that on every seed at least half (0.5) of the nonzero FP32 gradient values flush to zero in FP16 "
         "that loss scaling keeps; at the toy's natural gradient scale too few flush to test the claim. Part 'speed': BF16's step time below FP32's needs 16-bit units (a GPU); "
         "without such results rows (this CPU) it is not run (needs paper scale) and does not enter the verdict; CPU "
         "step times stay in timings.csv (BF16 autocast is slower here).",
))
