"""Claims beyond the lecture: the methods people fine-tune with in 2026 (QLoRA, DoRA, PiSSA, LoRA+; group: beyond).

The lecture stops at LoRA and 8-bit integers; these claims are the papers' own, checked with the same rules as the
lecture's (issue 33). IDs X1..X5 (the catalogue's proposal). Data only: each `register(Claim(...))` is one claim;
its machine rule is `checks` / `preconditions`, its `rule=` text the design rationale the machine form cannot say.

Arms (reproductions/beyond): every method at rank r = 1 (the lowest, where LoRA is least likely to sit at the
ceiling) and LoRA's learning rate (LoRA+, itself a learning-rate rule: A's rate from a search of its own), on the scale group's next-month task, on the smallest ladder rung, one fixed
budget (the cap) for every arm, as the papers compare methods at equal epochs. Per-run rows are claim "-", method
= the arm (lora, qlora, dora, pissa, loraplus = LoRA trained with LoRA+'s learning rates), params.r = the rank.
"""

from __future__ import annotations

import math

from .model import Check, Claim, Effect, R, W
from .registry import register
from .rules import NEXTMONTH_ITEMS, designed

DATE_33 = "2026-12-05"    # issue 33: the methods people use today
EQUIV = 0.05              # "matches" / "same final quality": accuracy difference inside +-5 points
SPEEDUP = math.log(2)     # LoRA+'s "up to ~2x" speed-up, as a log ratio of steps


def _arm(method: str, r: int = 1) -> tuple:
    return R(method=method, **{"params.r": r, "params.task": "nextmonth", "params.phase": "main"})


def _room(part: str, r: int = 1) -> Check:
    """Precondition: LoRA leaves room below the ceiling at rank r (an ordering or equivalence on a saturated metric
    cannot show anything)."""
    return Check("beyond_lora_accuracy", "<=", 0.99, W(**{"params.r": r}), part=part,
                 note="room: LoRA's seed-mean accuracy at this rank <= 0.99")


register(Claim(
    id="X1", family="beyond", title="Beyond the lecture: QLoRA (NF4 + LoRA) matches 16-bit LoRA",
    statement="QLoRA backpropagates through a frozen base quantized to 4-bit NormalFloat (NF4, blockwise absmax, "
              "double-quantized scales) into LoRA adapters and matches 16-bit LoRA's quality (beyond the lecture).",
    published="Dettmers et al. 2023, 'QLoRA: Efficient Finetuning of Quantized LLMs' (arXiv 2305.14314), abstract: "
              "'preserving full 16-bit finetuning task performance'; Sec. 4-5: NF4 with double quantization matches "
              "BFloat16 LoRA on GLUE, Super-NaturalInstructions and 5-shot MMLU (LLaMA 7B-65B), double "
              "quantization saving ~0.37 bits per parameter (~3 GB at 65B).",
    scales=("toy", "paper"), group="beyond",
    metric="test accuracy of QLoRA vs LoRA at the same rank, lr and budget (next month, smallest rung), seeds",
    paper_note="MMLU with LLaMA-7B..65B on a GPU: --model on the gpu profile.",
    checks=(
        Effect("accuracy", _arm("qlora"), "within", EQUIV, b=_arm("lora"), items=NEXTMONTH_ITEMS, part="quality",
               note="equivalence: QLoRA minus LoRA inside +-5 points"),
    ),
    preconditions=(designed("quality"), _room("quality")),
    rule="Toy, next-month task on the smallest rung, rank 1, LoRA's learning rate and the same fixed budget for both "
         "arms. Part 'quality': QLoRA (every Linear of the blocks in NF4, blocks of 64, double quantization; fp32 "
         "adapters) minus LoRA in seed-mean test accuracy has its 95% interval (seeds plus the binomial error of the "
         "600 test items) inside +-0.05 (an equivalence: 'matches'; the papers' differences are within a point, "
         "which 600 items cannot resolve). Preconditions: design power >= 0.8 at no difference with the pilot's "
         "noise (else inconclusive, underpowered at this scale, with the seeds or items it would need), and LoRA "
         "leaves room (seed-mean accuracy <= 0.99: at the ceiling an equivalence cannot fail).",
))
register(Claim(
    id="X2", family="beyond", title="Beyond the lecture: QLoRA fine-tunes a 65B model on one 48 GB GPU",
    statement="With QLoRA a 65B-parameter model fine-tunes on a single 48 GB GPU; 16-bit LoRA of the same model does "
              "not fit (beyond the lecture).",
    published="Dettmers et al. 2023 (arXiv 2305.14314), abstract: 'finetune a 65B parameter model on a single 48GB "
              "GPU'; > 780 GB for 16-bit full fine-tuning of LLaMA-65B, < 48 GB with QLoRA (Sec. 1). Setup: LoRA "
              "r = 64, alpha = 16 on every linear layer of the blocks, bf16 compute, gradient checkpointing, paged "
              "AdamW.",
    scales=("exact",), group="beyond",
    metric="bench.memory's predicted peak training bytes for a LLaMA-65B config (meta device), QLoRA and 16-bit LoRA",
    checks=(
        Check("x2_peak_bytes", "<=", 48e9, W(method="qlora"), agg="max", part="65B on 48 GB",
              note="QLoRA r = 64 on every block Linear, bf16, batch 1 x 512 tokens, checkpointing: peak <= 48 GB"),
        Check("x2_peak_bytes", ">", 48e9, W(method="lora"), agg="min", part="65B on 48 GB",
              note="the same with 16-bit frozen weights does not fit: quantization is what makes it fit"),
    ),
    rule="Exact (bench.memory's model on a LLaMA-65B config built on the meta device: 8192 wide, 80 layers, 64 heads, "
         "FFN 22016, vocabulary 32000): with LoRA r = 64, alpha = 16 on every Linear of the blocks, bf16 compute, "
         "AdamW, batch 1 x 512 tokens and gradient checkpointing, the predicted peak training memory of QLoRA (NF4 "
         "frozen weights with double-quantized scales, bench.memory's --base-4bit accounting, validated against "
         "measured bytes on tiny configs) is at most 48 GB (48e9 bytes), and that of 16-bit LoRA is above 48 GB (the "
         "contrast: the same step without 4-bit weights does not fit). Paged optimizers are not modelled (they move "
         "optimizer states out of GPU memory only on a spike; the prediction fits without them).",
))
register(Claim(
    id="X3", family="beyond", title="Beyond the lecture: DoRA beats LoRA at equal rank, most at low rank",
    statement="DoRA (the weight split into a magnitude vector and a direction; LoRA updates the direction) beats LoRA "
              "at the same rank, and the gain is largest at low rank (beyond the lecture).",
    published="Liu et al. 2024, 'DoRA: Weight-Decomposed Low-Rank Adaptation' (arXiv 2402.09353, ICML 2024), Table 1: "
              "LLaMA-7B commonsense reasoning average 74.7 (LoRA) vs 78.4 (DoRA), +3.7 points; +4.4 on LLaMA-3-8B; "
              "Sec. 5 (rank study, plot): the gap over LoRA widens as the rank falls.",
    scales=("toy", "paper"), group="beyond",
    metric="test accuracy of DoRA vs LoRA at the same rank, lr and budget (next month, smallest rung), seeds",
    paper_note="Commonsense reasoning with LLaMA-7B on a GPU (--model).",
    checks=(
        Effect("accuracy", _arm("dora"), "above", 0.0, b=_arm("lora"), items=NEXTMONTH_ITEMS, part="equal rank",
               note="DoRA minus LoRA at rank 1 (the published +3.7 points is the design's effect)", published=0.037),
        Check("x3_gain_low_minus_high", ">", 0.0, part="most at low rank",
              note="(DoRA - LoRA at rank 1) minus (DoRA - LoRA at rank 2), seed means: a point value"),
    ),
    preconditions=(designed("equal rank"), _room("equal rank"), _room("most at low rank", r=2)),
    rule="Toy, next-month task on the smallest rung, LoRA's learning rate and the same fixed budget for every arm. "
         "Part 'equal rank': DoRA minus LoRA at rank 1 in seed-mean test accuracy has its 95% interval (seeds plus "
         "the binomial error of the 600 test items) above 0; preconditions: design power >= 0.8 at the published "
         "+3.7 points with the pilot's noise (else inconclusive, underpowered at this scale, with the seeds or items "
         "it would need) and room (LoRA's seed-mean accuracy <= 0.99). Part 'most at low rank' (point value): "
         "DoRA's gain at rank 1 exceeds its gain at rank 2 (x3_gain_low_minus_high > 0), only where LoRA at rank 2 "
         "leaves room too (seed-mean accuracy <= 0.99; a first pilot at lr 3e-3: LoRA at rank 2 reached 0.998, so "
         "this part needs a rung with room at a higher rank: the gpu profile runs rank 2).",
))
register(Claim(
    id="X4", family="beyond", title="Beyond the lecture: PiSSA converges faster than LoRA at equal rank",
    statement="PiSSA (A and B from the top-r singular vectors of W, the residual frozen) converges faster than LoRA at "
              "the same rank and ends better (beyond the lecture).",
    published="Meng et al. 2024, 'PiSSA: Principal Singular Values and Singular Vectors Adaptation of Large Language "
              "Models' (arXiv 2404.02948, NeurIPS 2024), abstract: Mistral-7B on GSM8K 72.86% (PiSSA) vs 67.7% (LoRA), "
              "+5.16 points; faster convergence shown as loss curves (plots only; no speed-up factor given).",
    scales=("toy", "paper"), group="beyond",
    metric="steps to a fixed validation answer loss, and test accuracy, PiSSA vs LoRA (next month, smallest rung)",
    paper_note="GSM8K with Mistral-7B on a GPU (--model).",
    checks=(
        Effect("steps_to_target", _arm("lora"), "above", 0.0, b=_arm("pissa"), log=True, part="converges faster",
               note="log(LoRA's steps / PiSSA's steps) to the target validation loss: above 0"),
        Effect("accuracy", _arm("pissa"), "above", 0.0, b=_arm("lora"), items=NEXTMONTH_ITEMS, part="ends better",
               note="PiSSA minus LoRA at the cap (the published +5.16 points is the design's effect)", published=0.0516),
    ),
    preconditions=(designed("converges faster"), designed("ends better"), _room("ends better"),
                   Check("beyond_reached_target", "==", 1, agg="min", part="converges faster",
                         note="every LoRA and PiSSA run reached the target loss within the cap (no censored count)")),
    rule="Toy, next-month task on the smallest rung, rank 1, LoRA's learning rate, the same fixed budget. Part "
         "'converges faster': steps_to_target = the first evaluation (every 25 steps) at which the validation "
         "answer loss is at or below the group's target (1.5 nats/token, fixed from the pilot: LoRA's runs cross it "
         "about halfway through the cap); the log of LoRA's over PiSSA's steps (seed means of the logs) has its 95% "
         "interval above 0. Preconditions: every run of both arms reached the target (equals 1 for the smallest "
         "reached_target), and design power >= 0.8 at the pilot's own difference (the paper gives curves only). "
         "Part 'ends better': PiSSA minus LoRA in seed-mean test accuracy has its 95% interval (seeds plus the "
         "binomial error of the 600 items) above 0; preconditions: design power >= 0.8 at the published +5.16 "
         "points, and room (LoRA's seed-mean accuracy <= 0.99). Either part without its power is inconclusive, "
         "underpowered at this scale, with the seeds it would need.",
))
register(Claim(
    id="X5", family="beyond", title="Beyond the lecture: LoRA+ converges faster at the same final quality",
    statement="Training LoRA's B with a learning rate a fixed multiple of A's (LoRA+) converges faster than LoRA and "
              "reaches the same or better final quality (beyond the lecture).",
    published="Hayou et al. 2024, 'LoRA+: Efficient Low Rank Adaptation of Large Models' (arXiv 2402.12354, ICML "
              "2024), abstract: '1-2% improvements' and 'up to ~2X SpeedUp' at the same cost; ratio lr_B / lr_A = "
              "2^4 = 16 recommended.",
    scales=("toy", "paper"), group="beyond",
    metric="steps to a fixed validation answer loss, and test accuracy, LoRA+ (ratio 16) vs LoRA",
    paper_note="GLUE / instruction tuning with RoBERTa or Llama on a GPU (--model).",
    checks=(
        Effect("steps_to_target", _arm("lora"), "above", 0.0, b=_arm("loraplus"), log=True, part="converges faster",
               note="log(LoRA's steps / LoRA+'s steps) to the target validation loss: above 0",
               published=math.log(2)),
        Effect("accuracy", _arm("loraplus"), "within", EQUIV, b=_arm("lora"), items=NEXTMONTH_ITEMS,
               part="same final quality", note="equivalence: LoRA+ minus LoRA inside +-5 points"),
    ),
    preconditions=(designed("converges faster"), designed("same final quality"), _room("same final quality"),
                   Check("beyond_reached_target", "==", 1, agg="min", part="converges faster",
                         note="every LoRA and LoRA+ run reached the target loss within the cap")),
    rule="Toy, next-month task on the smallest rung, rank 1, the same fixed budget; LoRA at its pilot-picked "
         "learning rate, LoRA+ at its own (A's rate picked by a pilot search of its own, as the paper tunes both; "
         "B's 16x, peft's create_loraplus_optimizer groups). Part 'converges faster': the log of LoRA's over "
         "LoRA+'s steps to the target validation loss (1.5 nats/token) has its 95% interval above 0; preconditions: "
         "every run of both arms reached the target (equals 1 for the smallest reached_target) and design power >= "
         "0.8 at the published 2x (log 2 = 0.693). Part 'same final quality': LoRA+ minus LoRA in seed-mean test "
         "accuracy has its interval (seeds plus the binomial error of the 600 items) inside +-0.05 (equivalence; the "
         "paper's +1-2% lies inside); preconditions: design power >= 0.8 at no difference and room (LoRA's "
         "seed-mean accuracy <= 0.99). Either part without its power is inconclusive, underpowered at this scale.",
))
