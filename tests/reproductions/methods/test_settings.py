"""reproductions/methods/settings.py and the package's contract names."""

from __future__ import annotations

from bench.methods import presets
from reproductions import methods as R


def test_contract():
    assert R.GROUP == "methods" and R.CLAIMS == () and [b[0] for b in R.REGRESS] == ["quantized_linear_*"]
    assert callable(R.run) and callable(R.report)
    assert set(R.SETTINGS) == {"smoke", "cpu", "gpu"}
    cpu = R.SETTINGS["cpu"]
    assert (cpu.batch, cpu.seq) == (8, 128)
    assert {m.name for m in cpu.models} == {"gpt2-10m", "gpt2-small"}
    assert R.TARGET_MIXED_THROUGHPUT == 0.95 and R.METHODS[0] == "full"


def test_method_kwargs_are_the_presets_with_lora_on_c_attn():
    assert R.method_kwargs("lora") == {"r": presets.LORA_R, "alpha": presets.LORA_ALPHA, "target_modules": ("c_attn",)}
    assert R.method_kwargs("lora")["r"] == 8
    for m in R.METHODS:                 # the presets; LoRA and its variants on c_attn
        kw = presets.preset(m)[1]
        assert R.method_kwargs(m) == ({**kw, "target_modules": ("c_attn",)} if m in ("lora", "dora", "pissa", "qlora")
                                      else kw)
    assert R.method_kwargs("peft-dora") == R.method_kwargs("dora")
