"""The census of LayerNorm outputs that feed a Linear (issue 15): kurtosis and per-layer stats on synthetic
tensors, and which LayerNorms a tiny GPT-2 / BERT feed into a Linear."""

import math

import pytest
import torch

from bench import BenchError
from bench.numerics.ln_census import census_of_states, excess_kurtosis, feeding_layernorms, layer_stats, ln_census
from bench.numerics.toy import ToyLMConfig, tiny_gpt2


def test_excess_kurtosis_gaussian_uniform_and_spikes():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400_000, generator=g)
    assert abs(excess_kurtosis(x)) < 0.05                                   # Gaussian: 0 (sd of estimate ~0.008)
    assert excess_kurtosis(torch.rand(400_000, generator=g)) == pytest.approx(-1.2, abs=0.02)
    X = torch.randn(2000, 64, generator=g)
    base = excess_kurtosis(X)
    X[:, 5] *= 20.0                                                         # one planted dim at ~20 sigma
    assert excess_kurtosis(X) > 20.0 > 10 * abs(base)
    assert math.isnan(excess_kurtosis(torch.ones(10)))


def test_layer_stats_and_census_on_synthetic_states():
    P, D = 100, 16
    a = torch.zeros(P, D)
    a[:30, 2] = 7.0                                                         # dim 2 >= 6 at 30% of positions
    a[50, 9] = -12.0                                                        # one more position, another dim
    a[1, 4] = 8.0
    b = torch.zeros(P, D)
    b[:10, 2] = -6.5                                                        # the same dim in the other layer
    st = layer_stats(a)
    assert st["share_positions_ge6"] == pytest.approx(0.31)                 # rows 0..29 and row 50
    assert st["top_abs"] == [12.0, 8.0, 7.0] and st["top_dims"] == [9, 4, 2] and st["max_abs"] == 12.0
    c = census_of_states(["a", "b"], [a, b])
    assert c.share_layers_ge6 == 1.0 and c.share_positions_ge6 == pytest.approx(0.31)
    assert c.outlier_dims == [2] and c.layers_affected == 1.0 and c.positions_affected == pytest.approx(0.30)
    s = c.summary()
    assert s["n_outlier_dims"] == 1.0 and s["max_abs"] == 12.0 and s["kurtosis_max"] >= s["kurtosis_median"]
    quiet = census_of_states(["a"], [torch.randn(50, 8, generator=torch.Generator().manual_seed(1))])
    assert quiet.share_layers_ge6 == 0.0 and quiet.outlier_dims == [] and quiet.layers_affected == 0.0
    with pytest.raises(BenchError, match="no LayerNorm output feeds a Linear"):
        census_of_states([], [])


def test_feeding_layernorms_gpt2_and_bert():
    model = tiny_gpt2(ToyLMConfig(vocab=64, seq_len=16, d_model=32, n_layer=2, n_head=2), seed=0).eval()
    ids = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(0))
    pairs = feeding_layernorms(model, ids)
    assert pairs == [("transformer.h.0.ln_1", ["transformer.h.0.attn.c_attn"]),
                     ("transformer.h.0.ln_2", ["transformer.h.0.mlp.c_fc"]),
                     ("transformer.h.1.ln_1", ["transformer.h.1.attn.c_attn"]),
                     ("transformer.h.1.ln_2", ["transformer.h.1.mlp.c_fc"])]        # ln_f feeds the head via a view
    from transformers import BertConfig, BertModel
    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=64, max_position_embeddings=32), add_pooling_layer=False).eval()
    mask = torch.ones(2, 16, dtype=torch.long)
    mask[1, 10:] = 0                                                        # padding: left out of the census
    batch = {"input_ids": ids, "attention_mask": mask}
    names = [n for n, _ in feeding_layernorms(bert, batch)]
    assert names == ["embeddings.LayerNorm", "encoder.layer.0.attention.output.LayerNorm",
                     "encoder.layer.0.output.LayerNorm", "encoder.layer.1.attention.output.LayerNorm"]
    c, states = ln_census(bert, [batch])
    assert c.names == names and all(X.shape == (16 + 10, 32) for X in states)
