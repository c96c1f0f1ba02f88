"""LoRA+ (Hayou et al. 2024, https://arxiv.org/abs/2402.12354, Sec. 4): train B with a larger learning rate
than A, lr_B = ratio * lr_A (the paper's ratio ~ 2^4 = 16 for the models it tries). It changes the optimizer,
not the model, so it is no entry of the method registry: any LoRA-family model (lora, rslora, dora, pissa,
qlora) trains with it through `TrainConfig(loraplus_ratio=...)` in bench.train, or with these groups.

Grouping, as peft 0.21's `create_loraplus_optimizer` does it (so the two give the same groups):
- "B" (lr * ratio): every trainable `lora_B` weight and every trainable 1-D tensor (biases, norm weights,
  DoRA's magnitude vector). Weight decay `weight_decay` unless the tensor sits in an nn.LayerNorm or its name
  holds "bias", then 0.
- "A" (lr): every other trainable tensor (lora_A, a task head's weight matrix ...), weight decay `weight_decay`.
- peft's fourth group, LoRA on embedding layers (lr 1e-6), cannot occur: bench's LoRA adapts Linear/Conv1D only.
Each group carries `lr_scale` (1 or ratio), so a schedule that sets the lr of every group keeps the ratio.
"""

from __future__ import annotations

from torch import nn

from bench.methods.common import need


def _no_decay_names(model: nn.Module) -> set[str]:
    """Names of parameters inside an nn.LayerNorm or with 'bias' in their name (peft/transformers' rule)."""
    out = set()
    for mname, mod in model.named_modules():
        if isinstance(mod, nn.LayerNorm):
            out |= {f"{mname}.{n}" if mname else n for n, _ in mod.named_parameters()}
    return out | {n for n, _ in model.named_parameters() if "bias" in n}


def loraplus_groups(model: nn.Module, lr: float, ratio: float, weight_decay: float = 0.0) -> list[dict]:
    """Optimizer parameter groups [{"params", "lr", "weight_decay", "lr_scale", "name"}] for LoRA+: A-side at
    `lr`, B-side at `lr * ratio` (see the module doc). Empty groups are left out. BenchError when the model
    has no trainable lora_B (not a LoRA-family model) or ratio/lr are not positive."""
    need(lr > 0 and ratio > 0, f"loraplus: lr and ratio must be > 0, got {lr}, {ratio}")
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    need(any("lora_B" in n for n, _ in trainable), "loraplus: the model has no trainable lora_B weights; apply "
                                                   "a LoRA-family method (lora, dora, pissa, qlora) first")
    no_decay = _no_decay_names(model)
    groups = {"A": [], "B": [], "B_no_decay": []}
    for n, p in trainable:
        if "lora_B" in n or p.ndim == 1:
            groups["B_no_decay" if n in no_decay else "B"].append(p)
        else:
            groups["A"].append(p)
    spec = {"A": (1.0, weight_decay), "B": (ratio, weight_decay), "B_no_decay": (ratio, 0.0)}
    return [{"params": ps, "lr": lr * spec[k][0], "weight_decay": spec[k][1], "lr_scale": spec[k][0], "name": k}
            for k, ps in groups.items() if ps]
