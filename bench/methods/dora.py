"""DoRA, weight-decomposed low-rank adaptation (Liu et al. 2024, https://arxiv.org/abs/2402.09353, Sec. 4.1):
the adapted weight is split into a magnitude and a direction,

    W' = m * (W + s B A) / ||W + s B A||_row,    m: (out,) trainable, initialised to ||W||_row,

where ||.||_row is the L2 norm of each output row of the (out, in) weight (peft 0.21's `dim=1`, what the paper
calls the column norm of its (in, out) layout). As in the paper (Sec. 4.3, "reduce training overhead") and
peft, the norm is treated as a constant in backward (detached), so gradients reach m, A and B only through
the numerator. The forward never builds W': with y0 = W x (no bias),

    y = W x + b + (m/n - 1) * y0 + (m/n) * s * B A x,   n = ||W + s B A||_row (no grad)

which equals W' x + b. Under dropout in training, y0 is recomputed from the dropped-out input (peft's rule).
Everything else (targets, scaling, rsLoRA) is LoRA's, see bench.methods.lora.

Saved in peft's format: adapter_config.json with `use_dora: true`, and A, B and m in adapter_model.safetensors
(m under `<module path>.lora_magnitude_vector`, peft 0.21's key), so peft's PeftModel.from_pretrained loads ours
and load_trained loads peft's.

Merging writes m/n * (W + s B A) into W and keeps m/n to undo it exactly (up to float rounding).
Multi-adapter serving (bench.methods.multitask.multi_lora) takes plain LoRA only: it refuses DoRA, since
two DoRA adapters do not add on one module (each renormalises the whole weight).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench.methods import lora
from bench.methods.lora import LoraConfig, LoraLayer
from bench.methods.registry import MethodSpec


@dataclass
class DoraConfig(LoraConfig):
    name = "dora"
    paper = "https://arxiv.org/abs/2402.09353"

    def make_layer(self, mod: nn.Module) -> LoraLayer:
        return DoraLayer(mod, self.r, self.scaling(), self.dropout, self.init)

    def to_peft(self) -> dict:
        return {**super().to_peft(), "use_dora": True}

    @classmethod
    def from_peft(cls, c: dict) -> DoraConfig | None:
        init = c.get("init_lora_weights", True)
        if not c.get("use_dora") or init not in (True, False, "gaussian"):
            return None
        return cls(**lora.peft_common(c), init="gaussian" if init == "gaussian" else "kaiming")


class DoraLayer(LoraLayer):
    """LoRA layer plus `lora_magnitude_vector` m (out,), trainable (peft's parameter name)."""

    def __init__(self, base: nn.Module, r: int, scaling: float, dropout: float = 0.0, init: str = "kaiming"):
        super().__init__(base, r, scaling, dropout, init)
        self.lora_magnitude_vector = nn.Parameter(self.weight_norm())      # (out,) = ||W||_row since B = 0
        self.register_buffer("merge_factor", None, persistent=False)        # m/n while merged

    def peft_tensors(self) -> dict[str, torch.Tensor]:
        return {**super().peft_tensors(), "lora_magnitude_vector": self.lora_magnitude_vector}

    def base_weight(self) -> torch.Tensor:
        """The frozen weight as (out, in) (a view: GPT-2's Conv1D stores it (in, out))."""
        w = self.base.weight
        return w.T if self.fan_in_fan_out else w

    @torch.no_grad()
    def weight_norm(self) -> torch.Tensor:
        """(out,) L2 norms of the rows of W + s B A, without gradient."""
        w = self.base_weight()
        delta = (self.lora_B.weight @ self.lora_A.weight).to(w.dtype)         # (out, in)
        return torch.linalg.norm(w + self.scaling * delta, dim=1).to(w.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.base(x)                                                   # (..., out) = W x + b
        if self.merged:
            return result
        xd = self.dropout(x)
        if isinstance(self.dropout, nn.Identity) or not self.training:
            bias = getattr(self.base, "bias", None)
            y0 = result if bias is None else result - bias                      # W x
        else:
            y0 = F.linear(xd, self.base_weight())                               # W dropout(x)
        mag = (self.lora_magnitude_vector / self.weight_norm()).view(1, -1)     # (1, out) = m / n
        lora = self.lora_B(self.lora_A(xd))                                     # (..., out)
        return result + (mag - 1) * y0 + mag * lora * self.scaling

    @torch.no_grad()
    def merge(self) -> None:
        if self.merged:
            return
        factor = self.lora_magnitude_vector / self.weight_norm()               # (out,)
        w = self.base_weight()
        w.copy_(factor.view(-1, 1).to(w.dtype) * (w + self.scaling * (self.lora_B.weight @ self.lora_A.weight)))
        self.merge_factor, self.merged = factor, True

    @torch.no_grad()
    def unmerge(self) -> None:
        if not self.merged:
            return
        w = self.base_weight()
        w.copy_(w / self.merge_factor.view(-1, 1).to(w.dtype) - self.scaling * (self.lora_B.weight @ self.lora_A.weight))
        self.merge_factor, self.merged = None, False

    def extra_repr(self) -> str:
        return "dora, " + super().extra_repr()


def memory_branch(layer: DoraLayer):
    """bench.memory's hook: LoRA's branch, plus (m/n - 1) * W x saving W x and (m/n) * B A x saving B A x
    (out wide each) and three (out,) fp32 vectors (m, n, m/n)."""
    base, lora_branch = lora.memory_branch(layer)
    if lora_branch is None:
        return base, None

    def branch(tape, x, out, fi: int, fo: int):
        out = lora_branch(tape, x, out, fi, fo)
        tape.save(tape.new(fo, False), tape.new(fo, False), tape.nbytes(3 * 4 * fo))
        return out
    return base, branch


SPEC = MethodSpec(
    DoraConfig,
    presets={"dora": {"r": lora.LORA_R, "alpha": lora.LORA_ALPHA}},  # LoRA's rank and scaling: the comparison is
    tiny={"dora": {"r": 4}},                                           # the variant, not the budget
    layers={DoraLayer: memory_branch},
    save_format=lora.peft_format(DoraConfig),
    peft=lora.peft_config,
)
