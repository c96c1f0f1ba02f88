"""A training-memory model, by part, and a way to measure the same parts on a live model.

Parts (bytes):
- weights:      every parameter, in the storage dtype (int8 for frozen Linear weights when `frozen_int8`).
- gradients:    one per trainable parameter.
- optimizer:    AdamW's two moments (+ its `step` counter per tensor), or the fp32 master copy + moments
                under "mixed" precision (ZeRO's accounting, Rajbhandari et al. 2020, Sec. 3.1: 2+2+4+4+4 =
                16 bytes per trainable parameter, https://arxiv.org/abs/1910.02054).
- activations:  the tensors autograd saves for backward in one training step. Predicted by walking a
                symbolic forward pass of the model family (GPT-2, OPT, Llama) that knows which tensors each op
                saves and when: a frozen weight whose input needs no grad saves nothing, a frozen Linear whose
                input needs grad saves only its weight (no new memory), layer norms save input + 2 stats...
                (the rules of torch's derivatives.yaml as they apply to transformers' code).
- int8_overhead: row scales of int8 weights (bitsandbytes keeps one fp32 scale per output row). NF4 weights
                (`frozen_4bit`, or a QLoRA model's Linear4bit buffers) count codes and scales under weights.

Why LoRA and adapters need less: no gradients and no optimizer state for frozen weights (claim A2), while the
frozen weights themselves still sit in memory. Activations shrink less (frozen Linears skip saving their input
but norms, attention and the MLP nonlinearity still save theirs), so on small models with long sequences,
where activations dominate, the total falls less than on large models, where weights and states dominate.

`measure_step` counts the same parts from live tensors (parameters, `.grad`, optimizer state, and
`torch.autograd.graph.saved_tensors_hooks` for activations, deduplicated by storage), plus the process' peak
RSS (or CUDA's max_memory_allocated) as a cross-check that includes temporaries.

Modules: parts.py (`Setup`, `Memory`), inputs.py (the model or config given), estimate.py (the prediction),
activations.py (the symbolic forward pass), measure.py (live measurement).
"""

from bench.memory.activations import activation_bytes
from bench.memory.estimate import estimate
from bench.memory.inputs import ENCODERS, FAMILIES, family, max_positions, meta_model
from bench.memory.measure import Measured, Peak, measure_peak, measure_step, train_loss
from bench.memory.parts import OPTIMIZERS, PRECISIONS, Memory, Setup

__all__ = ["ENCODERS", "FAMILIES", "Measured", "Memory", "OPTIMIZERS", "PRECISIONS", "Peak", "Setup",
           "activation_bytes", "estimate", "family", "max_positions", "measure_peak", "measure_step", "meta_model",
           "train_loss"]
