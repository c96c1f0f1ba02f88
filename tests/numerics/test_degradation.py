"""Degradation measures (issue 15): KL to the FP32 reference, answer NLL and accuracy on a knowledge-style task."""

import copy
import math

import datasets
import pytest
import torch

from bench.numerics.degradation import answer_scores, kl_to_reference, reference_logprobs, reference_nll
from bench.numerics.int8_linear import quantize_model
from bench.numerics.toy import MarkovData, ToyLMConfig, markov_batches, tiny_gpt2
from bench.train import evaluate_classification, perplexity


@pytest.fixture(scope="module")
def tiny():
    model = tiny_gpt2(ToyLMConfig(vocab=64, seq_len=16, d_model=32, n_layer=1, n_head=2), seed=0).eval()
    return model, markov_batches(MarkovData(vocab=64), 2, 4, 16, seed=0)


def test_kl_zero_for_identical_models_positive_otherwise(tiny):
    model, batches = tiny
    ref = reference_logprobs(model, batches)
    same = kl_to_reference(ref, copy.deepcopy(model), batches)
    assert same["kl_per_token"] == 0.0                                      # the same computation: exactly 0
    assert math.exp(same["nll_per_token"]) == pytest.approx(perplexity(model, batches), rel=1e-6)
    assert reference_nll(ref, batches) == pytest.approx(same["nll_per_token"], rel=1e-9)
    q = kl_to_reference(ref, quantize_model(copy.deepcopy(model), method="absmax"), batches)
    assert q["kl_per_token"] > 0.0
    with torch.no_grad():
        other = copy.deepcopy(model)
        other.lm_head.weight.mul_(1.5)                                       # sharper logits everywhere
    assert kl_to_reference(ref, other, batches)["kl_per_token"] > q["kl_per_token"]


def test_answer_scores(tiny):
    model, _ = tiny
    g = torch.Generator().manual_seed(1)
    rows = [{"prompt_ids": torch.randint(0, 64, (5 + i % 2,), generator=g).tolist(), "candidate_ids": [3, 9, 17],
             "label": i % 3} for i in range(12)]
    ds = datasets.Dataset.from_list(rows)
    s = answer_scores(model, ds)
    assert s["accuracy"] == evaluate_classification(model, ds)
    with torch.no_grad():
        want = [float(-torch.log_softmax(model(input_ids=torch.tensor([r["prompt_ids"]])).logits[0, -1].double(), -1)
                      [r["candidate_ids"][r["label"]]]) for r in rows]
    assert s["answer_nll"] == pytest.approx(sum(want) / len(want), rel=1e-5)
