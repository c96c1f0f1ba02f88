"""Int8Linear / quantize_model: storage, equivalences, parity with bitsandbytes, bad input."""

import copy
import logging

import pytest
import torch
import torch.nn as nn
from transformers.pytorch_utils import Conv1D

from bench import BenchError
from bench.numerics import quant
from bench.numerics.int8_linear import METHODS, Int8Linear, quantize_model, storage_bytes
from bench.numerics.toy import ToyLMConfig, tiny_gpt2


def _linear(k=64, n=48, seed=0):
    torch.manual_seed(seed)
    return nn.Linear(k, n)


def _rel_err(y, ref):
    return float((y.detach().double() - ref.detach()).norm() / ref.detach().norm())


@pytest.mark.parametrize("method", METHODS)
def test_linear_and_conv1d_agree_and_approximate(method):
    lin = _linear()
    conv = Conv1D(48, 64)
    with torch.no_grad():
        conv.weight.copy_(lin.weight.t())
        conv.bias.copy_(lin.bias)
    x = torch.randn(3, 5, 64)
    a, b = Int8Linear.from_float(lin, method=method), Int8Linear.from_float(conv, method=method)
    assert a.weight_q.dtype == torch.int8 and a.weight_q.shape == (48, 64)
    assert not any(p.is_floating_point() and p.numel() == 64 * 48 for p in a.parameters())
    ya, yb = a(x), b(x)
    assert ya.shape == (3, 5, 48) and torch.equal(ya, yb)
    ref = x.double() @ lin.weight.double().t() + lin.bias.double()
    assert _rel_err(ya, ref) < 0.05


@pytest.mark.parametrize("method", ["absmax", "zeropoint", "rowwise", "vectorwise"])
def test_forward_equals_product_of_dequantised_operands(method):
    """The integer path (int32 accumulation, zero-point expansion) computes exactly what it should."""
    lin = _linear(128, 40, seed=3)
    layer = Int8Linear.from_float(lin, method=method)
    x = torch.randn(16, 128) * 3 + 0.7
    if method == "zeropoint":
        qx, sx, zx = quant.zeropoint_quantize(x)
        xd = quant.zeropoint_dequantize(qx, sx, zx)
    else:
        qx, ax = quant.absmax_quantize(x, dim=None if method == "absmax" else -1)
        xd = quant.absmax_dequantize(qx, ax)
    want = xd.double() @ layer.dequantized_weight().double().t() + lin.bias.detach().double()
    got = layer(x).double()
    assert float((got - want).abs().max() / want.abs().max()) < 1e-5


def test_llm_int8_decomposition_and_outlier_columns():
    lin = _linear(128, 64, seed=1)
    x = torch.randn(32, 128)
    x[::2, 10], x[1::4, 90] = 25.0, -6.0     # outlier feature columns
    layer = Int8Linear.from_float(lin, method="llm_int8", threshold=6.0)
    y = layer(x)
    assert layer.last_outlier_cols.tolist() == [10, 90]
    ref = x.double() @ lin.weight.double().t() + lin.bias.double()
    vec = Int8Linear.from_float(lin, method="vectorwise")(x)
    assert _rel_err(y, ref) < 0.5 * _rel_err(vec, ref)
    # threshold 0: plain vector-wise (as bitsandbytes)
    assert torch.equal(Int8Linear.from_float(lin, method="llm_int8", threshold=0.0)(x), vec)


@pytest.fixture(scope="module")
def bnb():
    b = pytest.importorskip("bitsandbytes")
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    return b


def test_parity_with_bitsandbytes(bnb):
    from reproductions.int8 import bnb_layer, bnb_outlier_cols, parity_inputs
    torch.manual_seed(0)
    lin = nn.Linear(256, 192)
    with torch.no_grad():
        lin.weight.copy_(lin.weight.half().float())
    ours, ref_layer = Int8Linear.from_float(lin, method="llm_int8", threshold=6.0), bnb_layer(lin)
    assert torch.equal(ref_layer.weight.data, ours.weight_q)                 # same int8 codes
    assert torch.allclose(ref_layer.weight.SCB, ours.weight_scale.flatten())  # same row scales (before 1st call)
    g = torch.Generator().manual_seed(0)
    for n_cols in (0, 5):
        x = parity_inputs(96, 256, n_cols, g)
        ref = x.double() @ lin.weight.double().t() + lin.bias.double()
        with torch.no_grad():
            e_b, e_o = _rel_err(ref_layer(x), ref), _rel_err(ours(x), ref)
        assert 0.9 <= e_o / e_b <= 1.1, (e_o, e_b)
        assert torch.equal(bnb_outlier_cols(ref_layer).sort().values, ours.last_outlier_cols.sort().values)
        assert len(ours.last_outlier_cols) == n_cols


def test_quantize_model_replaces_all_but_lm_head():
    model = tiny_gpt2(ToyLMConfig(vocab=64, seq_len=16, d_model=32, n_layer=2, n_head=2))
    ids = torch.randint(0, 64, (2, 16))
    with torch.no_grad():
        ref = model(input_ids=ids).logits
    before = storage_bytes(model)["total_bytes"]
    q = quantize_model(copy.deepcopy(model), method="llm_int8")
    kinds = {type(m).__name__ for n, m in q.named_modules() if n.endswith(("c_attn", "c_proj", "c_fc"))}
    assert kinds == {"Int8Linear"} and isinstance(q.lm_head, nn.Linear)
    assert sum(isinstance(m, Int8Linear) for m in q.modules()) == 2 * 4
    with torch.no_grad():
        y = q(input_ids=ids).logits
    assert float((y - ref).abs().max()) < 0.05 * float(ref.abs().max())
    held = storage_bytes(q)
    assert held["int8_bytes"] == 2 * 12 * 32 * 32 and held["total_bytes"] < before
    q2 = quantize_model(copy.deepcopy(model), method="absmax", skip=("lm_head", "c_fc"))
    assert type(q2.transformer.h[0].mlp.c_fc).__name__ == "Conv1D"


def test_bad_input_is_rejected_before_changes():
    model = tiny_gpt2(ToyLMConfig(vocab=64, seq_len=16, d_model=32, n_layer=1, n_head=2))
    for kw, msg in (({"method": "int4"}, "unknown int8 method"), ({"threshold": -1.0}, "threshold"),
                    ({"threshold": float("nan")}, "threshold")):
        with pytest.raises(BenchError, match=msg):
            quantize_model(model, **kw)
        assert type(model.transformer.h[0].attn.c_attn).__name__ == "Conv1D"   # untouched
    with pytest.raises(BenchError, match="no nn.Linear"):
        quantize_model(nn.Sequential(nn.ReLU()))
    bad = nn.Linear(4, 3)
    bad.weight = nn.Parameter(torch.randn(3, 4, 2))
    with pytest.raises(BenchError, match="2-D"):
        Int8Linear.from_float(bad)
    with pytest.raises(BenchError, match="nn.Linear or transformers Conv1D"):
        Int8Linear.from_float(nn.Conv2d(2, 2, 3))
    inf_w = nn.Linear(4, 3)
    with torch.no_grad():
        inf_w.weight[0, 0] = float("inf")
    with pytest.raises(BenchError, match="NaN/inf"):
        Int8Linear.from_float(inf_w)
    layer = Int8Linear.from_float(_linear(8, 4))
    for v in (float("nan"), float("inf")):
        x = torch.randn(2, 8)
        x[1, 3] = v
        with pytest.raises(BenchError, match="NaN/inf"):
            layer(x)
    with pytest.raises(BenchError, match="expects inputs with 8 features"):
        layer(torch.randn(2, 9))


@pytest.mark.parametrize("method", METHODS)
def test_tiny_inputs_and_weights_keep_their_precision(method):
    """Issue 17 K4 in the layers: quantization is scale-invariant, so scaling x (or W) by 1e-13 scales y by it.
    A scale floored at 1e-12 on one side only made these outputs ~10x too small."""
    lin = nn.Linear(16, 8, bias=False)
    x = torch.randn(5, 16)
    ref = Int8Linear.from_float(lin, method=method, threshold=0.0)(x).double()
    layer = Int8Linear.from_float(lin, method=method, threshold=0.0)
    assert _rel_err(layer(x * 1e-13).double() / 1e-13, ref) < 1e-5
    with torch.no_grad():
        lin.weight.mul_(1e-13)
    tiny = Int8Linear.from_float(lin, method=method, threshold=0.0)
    assert _rel_err(tiny(x).double() / 1e-13, ref) < 1e-5
    assert _rel_err(tiny.dequantized_weight().double(), lin.weight.double()) < 1 / 127
