"""reproductions/real/settings.py: the method settings are the presets with this group's overrides, and bad
settings are one-line errors."""

from __future__ import annotations

import pytest

import reproductions.real as R
from bench import BenchError
from bench.profiles import get_profile
from bench.repro import RunContext
from reproductions.real.settings import method_config


def test_method_configs_keep_the_group_values():
    assert R.CONFIG == {"full": {}, "lora": {"r": 8, "alpha": 16.0}, "rslora": {"r": 8, "alpha": 16.0, "rslora": True},
                        "adapters": {"size": 64}, "prefix": {"num_virtual_tokens": 10},
                        "prompt": {"num_virtual_tokens": 20}, "ptuning": {"num_virtual_tokens": 20}, "bitfit": {}}
    cfg = method_config("rslora", r=64)
    assert cfg.name == "lora" and cfg.r == 64 and cfg.rslora and cfg.alpha == 16.0
    assert method_config("adapters").size == 64


def test_bad_settings_are_bench_errors(tmp_path):
    ctx = RunContext(profile=get_profile("smoke"), seeds=(0,), out_dir=tmp_path,
                     options={"settings": {"methods": ["lora"]}})
    with pytest.raises(BenchError, match="must include full"):
        R.settings_for(ctx)
    ctx.options = {"settings": {"ranks": [0]}}
    with pytest.raises(BenchError, match=r"--set ranks: got \(0,\)"):
        R.settings_for(ctx)
