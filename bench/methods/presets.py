"""The suite's standard method settings: a preset name -> its method and `make_config` kwargs.

A harness asks `preset("lora", target_modules=("c_attn",))` and gets ("lora", {"r": 8, "alpha": 16.0,
"target_modules": ("c_attn",)}); what it overrides is its own experiment (a rank sweep, a rung-sized adapter)
and should say why. "rslora" is LoRA with alpha/sqrt(r) scaling (Kalajdzievski 2023), so it maps to the lora
config with rslora=True. Each method declares its presets in its own module (`SPEC.presets`, beside its config;
none declared: its config's defaults); STANDARD is read from the registry at each use.
"""

from __future__ import annotations

from bench import BenchError
from bench.methods.lora import LORA_ALPHA, LORA_R  # noqa: F401  (the LoRA preset's rank and alpha)
from bench.methods.registry import STANDARD


def preset(method: str, **overrides) -> tuple[str, dict]:
    """(config name, make_config kwargs) for `method` with `overrides` on top; BenchError on an unknown name."""
    if method not in STANDARD:
        raise BenchError(f"unknown method {method!r}; choose one of {', '.join(STANDARD)}")
    name, kw = STANDARD[method]
    return name, {**kw, **overrides}


def make_preset(method: str, **overrides):
    """The MethodConfig of `preset(method, **overrides)`."""
    from bench.methods import make_config
    name, kw = preset(method, **overrides)
    return make_config(name, **kw)
