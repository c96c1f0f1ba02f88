"""A thin nn.Module around a frozen transformers model, for methods that change the input (prompt tuning,
P-tuning) or the attention cache (prefix tuning) rather than the model's modules.

It still behaves like the transformers model: `.config`, `.generate`, `model(input_ids=, attention_mask=,
labels=)` returning the base model's output, and every other attribute is looked up on the base model."""

from __future__ import annotations

from torch import nn


class MethodWrapper(nn.Module):
    def __init__(self, base: nn.Module):
        super().__init__()
        self.base = base

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)          # own parameters / submodules
        except AttributeError:
            if name == "base":
                raise
            return getattr(self.base, name)           # config, generation_config, device, dtype, ...

    def get_base_model(self) -> nn.Module:
        return self.base

    def is_causal_lm(self) -> bool:
        can = getattr(self.base, "can_generate", None)
        return bool(can()) if callable(can) else False
