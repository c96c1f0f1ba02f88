"""Toy stand-ins: Markov data, and a tiny GPT-2 that learns it through bench.train."""

import pytest
import torch

from bench import BenchError
from bench.numerics.toy import MarkovData, ToyLMConfig, entropy_rate_ppl, markov_batches, tiny_gpt2, transition_matrix
from bench.train import TrainConfig, perplexity, train


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


def test_markov_data_is_learnable_by_the_tiny_gpt2():
    """bench.train on Markov rows lowers held-out perplexity toward the chain's floor (never below it much)."""
    d = MarkovData(vocab=32)
    model = tiny_gpt2(ToyLMConfig(vocab=32, seq_len=16, d_model=16, n_layer=1, n_head=2), seed=0)
    ev = markov_batches(d, 2, 8, 16, seed=99)
    before = perplexity(model, ev)
    rows = [{"input_ids": ids} for b in markov_batches(d, 40, 8, 16, seed=1) for ids in b]
    res = train(model, rows, TrainConfig(lr=1e-2, steps=40, batch_size=8, progress=False, threads=1))
    assert res.diverged_at is None and res.steps_done == 40
    assert 0.9 * entropy_rate_ppl(d) < perplexity(model, ev) < 0.8 * before
