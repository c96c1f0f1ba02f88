"""Toy stand-ins: Markov data, perplexity, the tiny trainer."""

import math

import pytest
import torch
import torch.nn as nn

from bench import BenchError
from bench.numerics.toy import (MarkovData, ToyLMConfig, entropy_rate_ppl, markov_batches, num_threads, perplexity,
                                tiny_gpt2, train_fp32, transition_matrix)


def test_markov_batches_deterministic_and_follow_the_chain():
    d = MarkovData(vocab=16)
    a, b = markov_batches(d, 3, 4, 20, seed=5), markov_batches(d, 3, 4, 20, seed=5)
    assert len(a) == 3 and a[0].shape == (4, 20) and all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], markov_batches(d, 1, 4, 20, seed=6)[0])
    P = transition_matrix(d)
    assert torch.allclose(P.sum(1), torch.ones(16))
    ids = torch.cat(a)
    assert (P[ids[:, :-1], ids[:, 1:]] > 0).all()
    assert 1.0 < entropy_rate_ppl(d) < 16
    with pytest.raises(BenchError):
        markov_batches(d, 0, 4, 20, seed=1)


class _Uniform(nn.Module):
    def __init__(self, v):
        super().__init__()
        self.v = v

    def forward(self, input_ids):
        return type("Out", (), {"logits": torch.zeros(*input_ids.shape, self.v)})()


def test_perplexity_of_uniform_model_is_vocab():
    batches = markov_batches(MarkovData(vocab=16), 2, 3, 10, seed=0)
    assert perplexity(_Uniform(16), batches) == pytest.approx(16)


def test_training_lowers_heldout_perplexity():
    d = MarkovData(vocab=32)
    cfg = ToyLMConfig(vocab=32, seq_len=16, d_model=16, n_layer=1, n_head=2)
    model = tiny_gpt2(cfg, seed=0)
    ev = markov_batches(d, 2, 8, 16, seed=99)
    before = perplexity(model, ev)
    with num_threads(1):
        losses = train_fp32(model, markov_batches(d, 40, 8, 16, seed=1), 40, lr=1e-2)
    assert len(losses) == 40 and math.isfinite(losses[-1])
    assert perplexity(model, ev) < 0.8 * before
