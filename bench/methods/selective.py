"""Selective methods: train a chosen subset of the existing parameters, add nothing.

- bitfit (Ben Zaken et al. 2021, https://arxiv.org/abs/2106.10199): only the bias terms train.
- top_k_layers: only the last k transformer blocks train (a classic partial fine-tuning baseline; Houlsby et
  al. 2019 compare adapters with it, https://arxiv.org/abs/1902.00751).
Both also train a randomly initialised classification head (`train_head`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from bench.methods.common import MethodConfig, blocks, freeze, need, unfreeze_head
from bench.methods.registry import MethodSpec


@dataclass
class BitFitConfig(MethodConfig):
    name = "bitfit"
    paper = "https://arxiv.org/abs/2106.10199"

    def validate(self, model: nn.Module) -> None:
        need(any(n.endswith("bias") for n, _ in model.named_parameters()),
             f"bitfit: {type(model).__name__} has no bias parameters (Llama-family models have none)")

    def inject(self, model: nn.Module) -> nn.Module:
        freeze(model)
        for n, p in model.named_parameters():
            if n.endswith("bias"):
                p.requires_grad_(True)
        unfreeze_head(model, self)
        return model


@dataclass
class TopKLayersConfig(MethodConfig):
    name = "top_k_layers"
    paper = "https://arxiv.org/abs/1902.00751"

    k: int = field(default=1, metadata={"help": "number of top (last) transformer blocks that train"})

    def check_fields(self) -> None:
        need(isinstance(self.k, int) and self.k > 0, f"top_k_layers: k must be a positive integer, got {self.k!r}")

    def validate(self, model: nn.Module) -> None:
        self.check_fields()
        _, bl = blocks(model)
        need(self.k <= len(bl), f"top_k_layers: k={self.k} exceeds the model's {len(bl)} blocks")

    def inject(self, model: nn.Module) -> nn.Module:
        _, bl = blocks(model)
        freeze(model)
        for block in bl[len(bl) - self.k:]:
            for p in block.parameters():
                p.requires_grad_(True)
        unfreeze_head(model, self)
        return model


BITFIT = MethodSpec(BitFitConfig, tiny={"bitfit": {}})
TOP_K_LAYERS = MethodSpec(TopKLayersConfig)        # no `bench memory --validate` case (it never had one)
