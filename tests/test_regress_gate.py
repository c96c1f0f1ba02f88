"""The CI gate against the committed baselines, both ways: it passes when the floats change as on another
CPU kind (another float path and freshly pretrained smoke rungs), and it fails when a real fault is planted
(LoRA scaling alpha/(2r), LoRA's B non-zero at init, LLM.int8()'s outlier threshold ignored)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from bench import regress
from bench.cli import run_group

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _smoke_problems(group: str) -> list[str]:
    with tempfile.TemporaryDirectory(prefix=f"gate-{group}-") as tmp:
        run_dir = run_group(group, "smoke", None, Path(tmp) / group, None, update_readme=False)
        return regress.compare(group, run_dir)


def test_gate_passes_under_another_float_path():
    """`bench regress --other-float-path`: ATen's scalar kernels, MKL capped at SSE4.2, 2 threads, a fresh rung
    cache (so the smoke rungs are pretrained again with other floats) must still pass (lora here; CI's .ci/run
    runs it for every group)."""
    res = subprocess.run([sys.executable, "-m", "bench", "regress", "--other-float-path", "--group", "lora"],
                         cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "lora: ok" in res.stdout and "different base model" in res.stdout   # the rungs really were rebuilt


def test_gate_fails_when_lora_scaling_is_alpha_over_2r(monkeypatch):
    from bench.methods import lora
    monkeypatch.setattr(lora.LoraConfig, "scaling", lambda self: self.alpha / (2 * self.r))
    problems = _smoke_problems("lora")
    assert any("l1_scaling_abs_err" in p for p in problems), problems[:5]


def test_gate_fails_when_lora_B_is_not_zero_at_init(monkeypatch):
    from bench.methods import lora
    init = lora.LoraLayer.__init__

    def nonzero_b(self, *args, **kwargs):
        init(self, *args, **kwargs)
        with torch.no_grad():
            self.lora_B.weight.normal_(0.0, 0.01)

    monkeypatch.setattr(lora.LoraLayer, "__init__", nonzero_b)
    problems = _smoke_problems("lora")
    assert any("l1_lora_B_abs_max_at_init" in p for p in problems), problems[:5]


def test_gate_fails_when_the_llm_int8_threshold_is_ignored(monkeypatch):
    from bench.numerics import int8_linear, quant
    no_outliers = lambda x, threshold: torch.empty(0, dtype=torch.long)  # noqa: E731
    monkeypatch.setattr(quant, "outlier_columns", no_outliers)
    monkeypatch.setattr(int8_linear, "outlier_columns", no_outliers)
    problems = _smoke_problems("int8")
    assert any("bnb_" in p or "Q4" in p for p in problems), problems[:5]
