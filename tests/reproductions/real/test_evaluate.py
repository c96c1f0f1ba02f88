"""reproductions/real/evaluate.py and training.py: the accuracy interval, the classifier under prompt tuning's
padding, and the training-memory accounting (bench.probes.SavedTensors)."""

from __future__ import annotations

import numpy as np
import torch

from bench import realmodel
from bench.methods import apply, make_config
from bench.train import collate
from reproductions.real import bootstrap_ci
from reproductions.real.evaluate import train_memory_bytes
from reproductions.real.settings import method_config
from tests.reproductions.real.tiny import needs_minilm


def test_bootstrap_interval_is_deterministic_and_contains_mean():
    c = (np.random.default_rng(0).random((3, 200)) < 0.7).astype(np.int8)
    assert bootstrap_ci(c, 200) == bootstrap_ci(c, 200)
    lo, hi = bootstrap_ci(c, 200)
    assert lo < c.mean() < hi


@needs_minilm
def test_classifier_labels_survive_prompt_tuning_padding():
    enc, _ = realmodel.load_encoder()
    model = apply(realmodel.classifier(enc, 0), make_config("prompt", num_virtual_tokens=3))
    b = collate([{"input_ids": [101, 2204, 102], "labels": 1}, {"input_ids": [101, 102], "labels": 0}])
    out = model(**b)
    assert out.logits.shape == (2, 2) and torch.isfinite(out.loss)


@needs_minilm
def test_train_memory_counts_trainable_state_and_activations():
    enc, _ = realmodel.load_encoder()
    full = train_memory_bytes(realmodel.classifier(enc, 0), 2, 8)
    lora = train_memory_bytes(apply(realmodel.classifier(enc, 0), method_config("lora")), 2, 8)
    assert full["gradients"] == full["weights"] and full["optimizer"] == 2 * full["weights"]
    assert 0 < lora["gradients"] < full["gradients"] / 50 and 0 < lora["activations"]
    assert full["total"] == full["weights"] + full["gradients"] + full["optimizer"] + full["activations"]
