"""reproductions/decoder/census.py: the running census agrees with bench.numerics.outliers' census of held
states, and Linear names map to their input."""

from __future__ import annotations

import torch

from bench.numerics.outliers import census_from_states
from reproductions.decoder.census import Tally, input_of


def test_input_of_names_every_block_linear():
    assert input_of("model.layers.3.self_attn.k_proj") == (3, "qkv")
    assert input_of("model.layers.0.self_attn.o_proj") == (0, "o")
    assert input_of("model.layers.12.mlp.up_proj") == (12, "gate_up")
    assert input_of("model.layers.7.mlp.down_proj") == (7, "down")
    assert input_of("lm_head") is None and input_of("model.layers.1.input_layernorm") is None


def test_tally_matches_the_census_of_held_states():
    g = torch.Generator().manual_seed(0)
    L, B, T, D = 8, 3, 10, 16
    states = [torch.randn(B, T, D, generator=g) for _ in range(L)]
    for i in range(0, L, 2):                        # a systematic dim in half of the layers at 20% of positions
        states[i][:, :2, 3] = 9.0
    states[5][0, 4, 11] = -40.0                     # one stray value
    t = Tally(L, D, B * T)
    for i, s in enumerate(states):                  # two batches, as the run feeds them
        t.add(i, 0, s[:2])
        t.add(i, 2 * T, s[2:])
    ref = census_from_states([s.reshape(-1, D) for s in states])
    got = t.summary()
    assert got["outlier_dims"] == ref.outlier_dims and 3 in got["outlier_dims"] and 11 not in got["outlier_dims"]
    assert got["layers_affected"] == ref.layers_affected and got["positions_affected"] == ref.positions_affected
    assert got["max_abs"] == ref.max_abs == 40.0
    big = torch.stack([s.reshape(-1, D).abs() >= 6 for s in states])
    assert abs(got["share_positions_ge6"] - float(big.any(2).double().mean())) < 1e-12
    assert t.top_dims(2)[0] == 3
