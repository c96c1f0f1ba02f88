"""The CI gate against the committed baselines fails when a real fault is planted (LoRA scaling alpha/(2r),
LoRA's B non-zero at init, LLM.int8()'s outlier threshold ignored). That it passes when the floats change as on
another CPU kind is CI's own step, `tox -e regress -- --other-float-path` (every group, ~14 min), not a test here:
repeating it for one group cost the suite 3 min."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import torch

from bench import regress
from bench.cli import run_group

pytestmark = pytest.mark.integration


def _smoke_problems(group: str) -> list[str]:
    with tempfile.TemporaryDirectory(prefix=f"gate-{group}-") as tmp:
        run_dir = run_group(group, "smoke", None, Path(tmp) / group, None, update_readme=False)
        return regress.compare(group, run_dir)


def test_gate_fails_on_each_planted_lora_fault(monkeypatch):
    """Two faults planted in one smoke run (one run, not two: each is read by its own row, and neither row reads
    the other fault -- `l1_scaling_abs_err` is |layer.scaling - alpha/r|, `l1_lora_B_abs_max_at_init` is max|B|
    before training, reproductions/lora/merge.py): LoRA scaling alpha/(2r), and B non-zero at init. The gate must
    report each row's value as moved (not merely missing)."""
    from bench.methods import lora
    monkeypatch.setattr(lora.LoraConfig, "scaling", lambda self: self.alpha / (2 * self.r))
    init = lora.LoraLayer.__init__

    def nonzero_b(self, *args, **kwargs):
        init(self, *args, **kwargs)
        with torch.no_grad():
            self.lora_B.weight.normal_(0.0, 0.01)

    monkeypatch.setattr(lora.LoraLayer, "__init__", nonzero_b)
    problems = _smoke_problems("lora")
    for metric in ("l1_scaling_abs_err", "l1_lora_B_abs_max_at_init"):
        assert any(metric in p and "value moved" in p for p in problems), (metric, problems[:5])


def test_gate_fails_when_the_llm_int8_threshold_is_ignored(monkeypatch):
    from bench.numerics import int8_linear, quant
    no_outliers = lambda x, threshold, **_: torch.empty(0, dtype=torch.long)  # noqa: E731
    monkeypatch.setattr(quant, "outlier_columns", no_outliers)
    monkeypatch.setattr(int8_linear, "outlier_columns", no_outliers)
    problems = _smoke_problems("int8")
    assert any("bnb_" in p or "Q4" in p for p in problems), problems[:5]
