import pytest

from bench import BenchError
from bench.methods import presets


def test_rslora_is_lora_with_sqrt_scaling_and_overrides_win():
    name, kw = presets.preset("rslora", r=64)
    assert name == "lora" and kw == {"r": 64, "alpha": presets.LORA_ALPHA, "rslora": True}
    cfg = presets.make_preset("lora", target_modules=("c_attn",))
    assert cfg.r == presets.LORA_R and cfg.alpha == presets.LORA_ALPHA


def test_unknown_method_is_one_clear_error():
    with pytest.raises(BenchError, match="unknown method 'lorax'"):
        presets.preset("lorax")
