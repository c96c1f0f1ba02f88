"""bench/numerics/keep_columns.py: fixed input columns in fp16, the rest int8 (absmax or vector-wise)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench import BenchError
from bench.numerics.int8_linear import Int8Linear
from bench.numerics.keep_columns import KeepColumnsLinear, keep_columns_model


def _lin(k=32, n=24, seed=0):
    torch.manual_seed(seed)
    lin = nn.Linear(k, n)
    return lin


@pytest.mark.parametrize("base", ["absmax", "vectorwise"])
def test_no_kept_columns_is_plain_int8(base):
    lin = _lin()
    x = torch.randn(5, 7, 32)
    assert torch.equal(KeepColumnsLinear.from_float(lin, [], base)(x), Int8Linear.from_float(lin, base)(x))


def test_every_column_kept_is_the_fp16_product():
    lin = _lin()
    x = torch.randn(9, 32)
    y = KeepColumnsLinear.from_float(lin, range(32), "absmax")(x)
    ref = x.half().float() @ lin.weight.detach().half().float().t() + lin.bias.detach()
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("base", ["absmax", "vectorwise"])
def test_keeping_the_outlier_column_recovers_what_int8_loses(base):
    lin = _lin()
    x = torch.randn(64, 32)
    x[:, 5] *= 60.0                                                       # a systematic outlier feature
    exact = lin(x).detach()
    err = lambda m: float((m(x) - exact).norm() / exact.norm())          # noqa: E731
    plain, kept = err(KeepColumnsLinear.from_float(lin, [], base)), err(KeepColumnsLinear.from_float(lin, [5], base))
    assert kept < plain / 5


def test_bad_inputs_are_bench_errors():
    lin = _lin()
    with pytest.raises(BenchError, match="columns must be in"):
        KeepColumnsLinear.from_float(lin, [32])
    with pytest.raises(BenchError, match="unknown base"):
        KeepColumnsLinear.from_float(lin, [], "zeropoint")
    with pytest.raises(BenchError, match="expects 32 features"):
        KeepColumnsLinear.from_float(lin, [1])(torch.randn(2, 31))


def test_keep_columns_model_skips_the_head():
    model = nn.Sequential()
    model.add_module("a", _lin(8, 8))
    model.add_module("lm_head", _lin(8, 4))
    keep_columns_model(model, lambda name: [0] if name == "a" else [], "vectorwise")
    assert isinstance(model.a, KeepColumnsLinear) and model.a.cols.tolist() == [0]
    assert type(model.lm_head) is nn.Linear
    with pytest.raises(BenchError, match="found no nn.Linear"):
        keep_columns_model(nn.Sequential(nn.ReLU()), lambda n: [])
