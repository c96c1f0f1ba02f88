"""The suite's standard method settings: the one place that maps a method name to its `make_config` kwargs.

A harness asks `preset("lora", target_modules=("c_attn",))` and gets ("lora", {"r": 8, "alpha": 16.0,
"target_modules": ("c_attn",)}); what it overrides is its own experiment (a rank sweep, a rung-sized adapter)
and should say why. "rslora" is LoRA with alpha/sqrt(r) scaling (Kalajdzievski 2023), so it maps to the lora
config with rslora=True. Methods without an entry here use their config class' defaults.
"""

from __future__ import annotations

from bench import BenchError

LORA_R = 8            # the LoRA paper's common choice for GPT-3 (r = 8 on q,v; Hu et al. 2021, Table 15)
LORA_ALPHA = 16.0     # alpha = 2r, peft's examples; scaling alpha/r = 2

STANDARD: dict[str, tuple[str, dict]] = {
    "full": ("full", {}),
    "lora": ("lora", {"r": LORA_R, "alpha": LORA_ALPHA}),
    "rslora": ("lora", {"r": LORA_R, "alpha": LORA_ALPHA, "rslora": True}),
    "dora": ("dora", {"r": LORA_R, "alpha": LORA_ALPHA}),     # LoRA's rank and scaling: the comparison is the
    "pissa": ("pissa", {"r": LORA_R, "alpha": LORA_ALPHA}),   # variant, not the budget
    "qlora": ("qlora", {"r": LORA_R, "alpha": LORA_ALPHA}),   # NF4, blocks of 64, double quantization
    "adapters": ("adapters", {}),
    "prefix": ("prefix", {}),
    "prompt": ("prompt", {}),
    "ptuning": ("ptuning", {}),
    "bitfit": ("bitfit", {}),
    "top_k_layers": ("top_k_layers", {}),
}


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
