"""PiSSA, principal singular values and vectors adaptation (Meng et al. 2024, https://arxiv.org/abs/2404.02948,
Sec. 3): LoRA whose A and B start from the top-r singular triplets of W instead of (random, 0), with the rest
of W kept frozen as the residual:

    W = U S V^T (out, in);   A = sqrt(S_r / s) V_r^T  (r, in),   B = U_r sqrt(S_r / s)  (out, r),
    W_res = W - s B A,   so  W_res x + s B A x = W x  at step 0 (up to float rounding).

The SVD runs in float32 on the (out, in) weight (GPT-2's Conv1D is transposed first) and the residual is cast
back to W's dtype; this is peft 0.21's `init_lora_weights="pissa"` recipe (exact SVD), so the initial A, B and
residual equal peft's. Dividing S_r by s makes s B A the rank-r part of W for any alpha.

The base weight changes at apply(): a target whose weight is tied to another module (GPT-2's lm_head) is
refused. On the meta device (shape-only models) nothing is decomposed.

Saving writes peft's format: adapter_config.json with `init_lora_weights: "pissa"` and the trained A, B in
adapter_model.safetensors. What it covers: the adapter only, NOT the residual base W_res. Like peft (which
saves the same two files and, in PeftModel.from_pretrained, re-runs the SVD on the base it is given),
load_trained re-derives W_res from the ORIGINAL base weights by the same deterministic SVD before loading A, B;
so an adapter must be loaded onto the base it was trained from, never onto one that already holds a residual.
peft's conversion of a trained PiSSA adapter to a plain LoRA one (`path_initial_model_for_weight_conversion`)
is not implemented, nor are peft's "pissa_niter_K" (randomised SVD) adapters (load_trained refuses them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bench.methods import lora
from bench.methods.common import need
from bench.methods.lora import LoraConfig, LoraLayer, find_targets, refuse_tied
from bench.methods.registry import MethodSpec


@dataclass
class PissaConfig(LoraConfig):
    name = "pissa"
    paper = "https://arxiv.org/abs/2404.02948"

    def validate(self, model: nn.Module) -> None:
        super().validate(model)
        refuse_tied(model, [(f"{n}.weight", m.weight) for n, m in find_targets(model, self.target_modules)],
                    "pissa")

    def make_layer(self, mod: nn.Module) -> LoraLayer:
        layer = LoraLayer(mod, self.r, self.scaling(), self.dropout, self.init)
        pissa_init(layer)
        return layer

    def to_peft(self) -> dict:
        return {"use_dora": False, "init_lora_weights": "pissa"}   # peft's exact-SVD PiSSA

    @classmethod
    def from_peft(cls, c: dict) -> PissaConfig | None:
        if c.get("use_dora") or c.get("init_lora_weights") != "pissa":
            return None
        return cls(**lora.peft_common(c))


@torch.no_grad()
def pissa_init(layer: LoraLayer) -> None:
    """Set A, B of `layer` from the top-r SVD of its base weight and leave the residual in the base weight."""
    w = layer.base.weight
    if w.device.type == "meta":
        return
    need(w.dtype in (torch.float32, torch.float16, torch.bfloat16), f"pissa: the base weight must be a float "
                                                                     f"tensor, got {w.dtype}")
    w32 = (w.T if layer.fan_in_fan_out else w).float()                           # (out, in)
    U, S, Vh = torch.linalg.svd(w32, full_matrices=False)                         # (out, k), (k,), (k, in)
    r, s = layer.r, layer.scaling
    root = torch.sqrt(S[:r] / s)                                                  # (r,)
    A = root.unsqueeze(1) * Vh[:r]                                                # (r, in)  = diag(root) V_r^T
    B = U[:, :r] * root.unsqueeze(0)                                              # (out, r) = U_r diag(root)
    layer.lora_A.weight.copy_(A)
    layer.lora_B.weight.copy_(B)
    residual = w32 - (s * B) @ A                                                  # (out, in), peft's rounding order
    w.copy_((residual.T if layer.fan_in_fan_out else residual).to(w.dtype))


SPEC = MethodSpec(
    PissaConfig,
    presets={"pissa": {"r": lora.LORA_R, "alpha": lora.LORA_ALPHA}},   # LoRA's budget; only the init differs
    tiny={"pissa": {"r": 4}},                   # its layer is LoRA's, so is its memory-model hook
    save_format=lora.peft_format(PissaConfig),
    peft=lora.peft_config,
    rewrites_base=True,                         # the residual W - s B A is written into the base weight
)
