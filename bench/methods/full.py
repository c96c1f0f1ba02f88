"""Full fine-tuning: every parameter trains (the baseline every PEFT method is compared with)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from bench.methods.common import MethodConfig
from bench.methods.registry import MethodSpec


@dataclass
class FullConfig(MethodConfig):
    name = "full"
    paper = "https://arxiv.org/abs/1810.04805"  # BERT's fine-tuning recipe: all weights train

    def inject(self, model: nn.Module) -> nn.Module:
        for p in model.parameters():
            p.requires_grad_(True)
        return model


SPEC = MethodSpec(FullConfig, tiny={"full": {}})
