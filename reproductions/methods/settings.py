"""The benchmark's contract names, targets and settings per profile.

The models are GPT-2 configs with random weights (timings and memory do not depend on the values). The smoke
profile checks the machinery in seconds; the cpu profile measures a 10M and a GPT-2-small model at batch 8 x 128
tokens, with enough ABBA pairs that the targets' 5% margins are above the round-to-round noise of this machine.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from bench.methods.presets import preset
from bench.methods.registry import METHOD_NAMES, WITH_PEFT

GROUP = "methods"
CLAIMS = ()
TAKES_MODEL = False   # fixed configs: `--model` is refused before any work (bench.cli.run_group)
REGRESS = [
    ("quantized_linear_*", 0.0, 0.05, "bitsandbytes' NF4 path depends on the CPU (a fused bfloat16 GEMM with "
                                      "AVX512-BF16, else dequantize + fp32): its error moves by well under 5%"),
]

TARGET_OURS_OVER_PEFT = 1.05      # our step / peft's, every method peft also has (LoRA: the brief's target)
TARGET_MERGED_OVER_BASE = 1.03    # merged LoRA forward / base forward
TARGET_MIXED_THROUGHPUT = 0.95    # mixed-task batch throughput / single-task batch throughput (same size)
TARGET_QUANT_OURS_OVER_BNB = 1.0  # our LLM.int8() Linear / bitsandbytes' Linear8bitLt, eval forward (issue 33)

# Every registered method of bench.methods, in registration order (the tables'); full fine-tuning is the
# reference of the ratios. Read from the registry at each use: a new method joins without an edit here.
METHODS = METHOD_NAMES
# The methods timed against peft's counterpart (SPEC.peft), as variant "peft-<method>" beside ours.
PEFT_METHODS = WITH_PEFT
PEFT = "peft-"
# This benchmark's LoRA: the suite's preset (r = 8, alpha = 16) on GPT-2's fused q,k,v projection only, as in
# the brief; so are the LoRA variants (any method with target_modules), and peft's counterparts run with the
# same settings. The other methods use their presets (config defaults).
LORA_TARGETS = ("c_attn",)


def method_kwargs(method: str) -> dict:
    """make_config kwargs of `method` (or of "peft-<method>") in this benchmark: bench.methods.presets, with
    target_modules = LORA_TARGETS for LoRA and its variants."""
    from bench.methods import METHODS as CONFIGS

    method = method.removeprefix(PEFT)
    name, kw = preset(method)
    targeted = "target_modules" in {f.name for f in dataclasses.fields(CONFIGS[name])}
    return preset(method, **({"target_modules": LORA_TARGETS} if targeted else {}))[1]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    n_embd: int
    n_layer: int
    n_head: int
    vocab: int


@dataclass(frozen=True)
class Settings:
    models: tuple[ModelSpec, ...]
    batch: int
    seq: int
    rounds: int           # training-step rounds (after one warm-up step per variant)
    infer_rounds: int     # inference rounds per shape
    infer_shapes: tuple[tuple[int, int], ...]   # (batch, seq) of the latency measurement
    pair_rounds: int = 2  # ABBA pairs for the targets (ours vs peft step; merged vs base forward; mixed vs single)
    mixed_tasks: int = 4  # K tasks in the mixed-task batch (part 4); 0 skips it
    # part 5, our quantized Linears vs bitsandbytes': (M tokens, K in, N out) per measurement; () skips it.
    # bitsandbytes 0.50.2's CPU NF4 kernel needs K >= 64 (tests/methods/test_qlora.py)
    quant_shapes: tuple[tuple[int, int, int], ...] = ()
    quant_outlier_cols: int = 3   # feature columns of x holding |x| in 6..60 (LLM.int8() takes them out)


SETTINGS = {
    "smoke": Settings(models=(ModelSpec("gpt2-tiny", 32, 2, 2, 256),), batch=2, seq=16, rounds=2, infer_rounds=3,
                      infer_shapes=((2, 16), (1, 8)), pair_rounds=2, quant_shapes=((4, 128, 64),)),
    "cpu": Settings(models=(ModelSpec("gpt2-10m", 320, 8, 5, 2048), ModelSpec("gpt2-small", 768, 12, 12, 50257)),
                    batch=8, seq=128, rounds=7, infer_rounds=15, infer_shapes=((8, 128), (1, 16)),
                    # a GPT-2-small step varies by ~8% round to round here, more than the 5% margin: 20 pairs
                    pair_rounds=20,
                    # the sizes: one 4096 x 4096 projection, a decode-sized and a prefill-sized M
                    quant_shapes=((16, 4096, 4096), (512, 4096, 4096))),
}
SETTINGS["gpu"] = SETTINGS["cpu"]
