"""Outlier census and planting outliers (Q5): function preserved, census finds them, plain int8 breaks; the all-LN
planting at the paper's magnitudes (issue 15)."""

import copy

import pytest
import torch
import torch.nn as nn

from bench import BenchError
from bench.numerics.int8_linear import quantize_model
from bench.numerics.ln_census import ln_census
from bench.numerics.outliers import all_ln_pairs, census_from_states, outlier_census, plant_outliers, plant_outliers_all_ln
from bench.numerics.toy import ToyLMConfig, tiny_gpt2


def test_census_definitions_on_synthetic_states():
    L, P, D = 4, 100, 8
    states = [torch.zeros(P, D) for _ in range(L)]
    for l in (0, 1):                       # dim 3: >= 6 in 2 of 4 layers, at 10 positions -> outlier
        states[l][:10, 3] = 7.0
    for l in range(L):                     # dim 5: in every layer but only at 2% of positions -> not
        states[l][:2, 5] = -9.0
    states[2][:50, 6] = 6.5                # dim 6: 50% of positions but 1 of 4 layers (25%) -> outlier
    states[0][:, 0] = 4.0                  # outside [-3.5, 3.5] but below 6
    c = census_from_states(states)
    assert c.outlier_dims == [3, 6]
    assert c.layers_affected == pytest.approx(3 / 4)        # layers 0, 1, 2
    assert c.positions_affected == pytest.approx(50 / 100)
    big = 2 * 10 + 4 * 2 + 50 + 100
    assert c.share_within_bulk == pytest.approx(1 - big / (L * P * D))
    assert c.max_abs == 9.0 and c.row()["n_outlier_dims"] == 2
    with pytest.raises(BenchError):
        census_from_states([])


@pytest.fixture(scope="module")
def model_and_ids():
    model = tiny_gpt2(ToyLMConfig(vocab=64, seq_len=32, d_model=32, n_layer=2, n_head=2), seed=0).eval()
    g = torch.Generator().manual_seed(0)
    return model, [torch.randint(0, 64, (4, 32), generator=g) for _ in range(2)]


@torch.no_grad()
def test_planting_preserves_fp32_and_breaks_plain_int8(model_and_ids):
    model, batches = model_and_ids
    planted = plant_outliers(copy.deepcopy(model), [1, 7], 8.0)
    ids = batches[0]
    ref = model(input_ids=ids).logits
    assert float((planted(input_ids=ids).logits - ref).abs().max()) <= 1e-4
    assert not torch.equal(planted.transformer.h[0].ln_2.weight, model.transformer.h[0].ln_2.weight)
    # the linear layers' inputs now carry the planted outlier dims; the residual stream does not
    assert outlier_census(planted, batches, source="linear_inputs").outlier_dims == [1, 7]
    assert outlier_census(model, batches, source="linear_inputs").outlier_dims == []
    assert outlier_census(planted, batches, source="hidden").outlier_dims == []

    def fc_out(m):   # the output of block 0's MLP input projection, where the planted dims enter
        got = []
        h = m.transformer.h[0].mlp.c_fc.register_forward_hook(lambda mod, i, o: got.append(o))
        m(input_ids=ids)
        h.remove()
        return got[0].double()

    ref_fc = fc_out(model)
    assert torch.allclose(fc_out(planted), ref_fc, atol=1e-5)

    def err(m, method):
        y = fc_out(quantize_model(copy.deepcopy(m), method=method))
        return float((y - ref_fc).norm() / ref_fc.norm())

    # the mechanism at any scale: per-tensor absmax error jumps, LLM.int8() stays small
    assert err(planted, "absmax") > 3 * err(model, "absmax")
    assert err(planted, "llm_int8") < 2 * err(model, "llm_int8")
    assert err(planted, "llm_int8") < 0.5 * err(planted, "absmax")


def test_plant_outliers_bad_input(model_and_ids):
    model, _ = model_and_ids
    for dims, scale, msg in (([], 2.0, "distinct dims"), ([32], 2.0, "distinct dims"), ([1, 1], 2.0, "distinct"),
                             ([1], 0.0, "scale"), ([1], float("inf"), "scale")):
        with pytest.raises(BenchError, match=msg):
            plant_outliers(model, dims, scale)
    with pytest.raises(BenchError, match="layers"):
        plant_outliers(model, [1], 2.0, layers=[5])
    with pytest.raises(BenchError, match="GPT-2-style"):
        plant_outliers(nn.Sequential(nn.Linear(2, 2)), [0], 2.0)
    with pytest.raises(BenchError, match="census source"):
        outlier_census(model, [], source="attention")


def test_plant_outliers_refuses_tied_tensors_before_writing(model_and_ids):
    """Issue 17 K1: a LayerNorm shared by two blocks would be scaled twice while each c_fc is divided once."""
    model = copy.deepcopy(model_and_ids[0])
    model.transformer.h[1].ln_2 = model.transformer.h[0].ln_2                 # tie the two blocks' ln_2
    before = {n: p.clone() for n, p in model.named_parameters()}
    with pytest.raises(BenchError, match=r"h\.0\.ln_2\.weight is shared with transformer\.h\.1\.ln_2\.weight"):
        plant_outliers(model, [1], 4.0)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    with pytest.raises(BenchError, match="tied weights"):                     # one layer, still shared: refused
        plant_outliers(model, [1], 4.0, layers=[1])


# ---------------------------------------------------------------- all-LN planting (issue 15)
@torch.no_grad()
def test_all_ln_planting_keeps_fp32_and_reaches_the_paper_magnitudes(model_and_ids):
    model, batches = model_and_ids
    planted, factors = plant_outliers_all_ln(copy.deepcopy(model), [1, 7], batches[0], target_rms=20.0)
    for ids in batches:                                                       # the calibration batch and another
        assert float((planted(input_ids=ids).logits - model(input_ids=ids).logits).abs().max()) <= 1e-4
    assert factors.shape == (2 * 2, 2) and bool((factors > 1).all())          # (ln_1, ln_2) x 2 blocks, 2 dims
    names = [n for n, _, _ in all_ln_pairs(planted)]
    assert names == ["transformer.h.0.ln_1", "transformer.h.0.ln_2", "transformer.h.1.ln_1", "transformer.h.1.ln_2"]
    c, states = ln_census(planted, batches[:1])
    assert c.names == names and c.outlier_dims == [1, 7] and c.layers_affected == 1.0
    for X in states:                                                          # every LayerNorm: RMS 20 on the
        rms = X[:, [1, 7]].double().pow(2).mean(0).sqrt()                     # calibration batch, peaks 20-100
        assert torch.allclose(rms, torch.full_like(rms, 20.0), rtol=1e-3)
        assert 20.0 <= float(X[:, [1, 7]].abs().max()) <= 100.0
        others = [d for d in range(X.shape[1]) if d not in (1, 7)]
        assert float(X[:, others].abs().max()) < 6.0                          # the rest untouched
    assert ln_census(model, batches[:1])[0].outlier_dims == []


def test_all_ln_planting_bad_input(model_and_ids):
    model, batches = model_and_ids
    for dims, target, msg in (([], 20.0, "distinct dims"), ([32], 20.0, "distinct dims"), ([1], 0.0, "target_rms")):
        with pytest.raises(BenchError, match=msg):
            plant_outliers_all_ln(copy.deepcopy(model), dims, batches[0], target)
    quiet = copy.deepcopy(model)
    with torch.no_grad():                                                     # dim 3 of block 1's ln_1 is always 0
        quiet.transformer.h[1].ln_1.weight[3] = 0.0
        quiet.transformer.h[1].ln_1.bias[3] = 0.0
    with pytest.raises(BenchError, match=r"dim 3 of transformer\.h\.1\.ln_1 has RMS"):
        plant_outliers_all_ln(quiet, [3], batches[0])
    with pytest.raises(BenchError, match="GPT-2-style"):
        plant_outliers_all_ln(nn.Sequential(nn.Linear(2, 2)), [0], batches[0])
