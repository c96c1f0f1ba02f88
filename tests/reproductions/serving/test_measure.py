"""reproductions/serving/measure.py: the mixed-task equivalence (and that it can fail), the task parts, the tuned
models, one serving window, and which way the timed ratios point."""

from __future__ import annotations

import copy
import time

import pytest
import torch

from bench import BenchError
from bench.methods import apply, make_config, multi_lora, prompt_bank
from bench.methods.lora import lora_layers
from reproductions import serving as V
from tests.reproductions.test_scale import task_rows, tiny_gpt2


def test_prompt_mixed_batch_equals_each_task_alone_and_can_fail():
    base = tiny_gpt2()
    rows = task_rows()
    prompts = torch.randn(3, 6, 32)                                       # K = 3 tasks, n = 6
    diff = V.p4_equivalence(base, rows, prompts=prompts)
    assert diff <= 1e-5
    assert V.p4_equivalence(base, rows, prompts=prompts) == diff           # deterministic
    # the same rows with another task's prompt are far off: the check can fail
    bank = prompt_bank(copy.deepcopy(base), {str(k): prompts[k] for k in range(3)})
    ids, mask = V.pad(rows[0])
    with torch.no_grad():
        wrong = bank(input_ids=ids, attention_mask=mask, task_ids=torch.ones(len(rows[0]), dtype=torch.long)).logits
        right = bank(input_ids=ids, attention_mask=mask, task_ids=torch.zeros(len(rows[0]), dtype=torch.long)).logits
    assert V.max_abs_diff_real(wrong, right, mask) > 1e-2


def test_lora_per_example_adapters_equal_each_task_alone_and_can_fail():
    base = tiny_gpt2()
    models = []
    for k, r in enumerate((4, 2)):                                       # ranks may differ between tasks
        torch.manual_seed(k)
        m = apply(copy.deepcopy(base), make_config("lora", r=r, alpha=8.0))
        with torch.no_grad():
            for _, layer in lora_layers(m):
                layer.lora_B.weight.normal_(0, 0.2)
        models.append(m.eval())
    rows = task_rows(((5, 9, 3), (12, 4)))
    assert V.p4_equivalence(base, rows, lora_models=models) <= 1e-5
    mixed = multi_lora(copy.deepcopy(base), {"0": models[0], "1": models[1]})
    ids, mask = V.pad(rows[0])
    with torch.no_grad():
        wrong = mixed(input_ids=ids, attention_mask=mask, task_ids=[1] * len(rows[0])).logits  # task 1 on task 0
        right = models[0](input_ids=ids, attention_mask=mask).logits
    assert V.max_abs_diff_real(wrong, right, mask) > 1e-2
    with pytest.raises(BenchError, match="1 adapter choices for a batch of 3"):
        mixed(input_ids=ids, attention_mask=mask, task_ids=[1])
    other = apply(copy.deepcopy(tiny_gpt2(d=16)), make_config("lora", r=2, alpha=8.0))
    with pytest.raises(BenchError, match="do not fit"):
        multi_lora(copy.deepcopy(base), {"a": models[0], "b": other})


def test_parts_are_distinct_and_tuned_models_are_own_copies_of_each_task():
    base = tiny_gpt2()
    prompts, loras = V.task_parts(base, 3, 5, dict(r=4, alpha=8.0), torch.Generator().manual_seed(0))
    assert prompts.shape == (3, 5, 32) and len(loras) == 3
    assert not torch.equal(prompts[0], prompts[1])
    tuned = V.tuned_models(loras)
    ids, task_ids, per_task = V.window(3, 2, 7, 100, torch.Generator().manual_seed(1))
    assert ids.shape == (6, 7) and task_ids.tolist() == [0, 1, 2, 0, 1, 2]
    assert all(torch.equal(p, ids[k::3]) for k, p in enumerate(per_task))
    with torch.no_grad():
        outs = [t(input_ids=per_task[k]).logits for k, t in enumerate(tuned)]
        for k in range(3):      # merged: the task's LoRA model's function, in weights of its own
            assert (outs[k] - loras[k](input_ids=per_task[k]).logits).abs().max() <= 1e-5
        assert (outs[0] - tuned[1](input_ids=per_task[0]).logits).abs().max() > 1e-3
        mixed = V.mixed_models(base, prompts, loras)["lora"](input_ids=ids, task_ids=task_ids).logits
        assert (mixed[0::3] - outs[0]).abs().max() <= 1e-5
    weights = {t.transformer.h[0].attn.c_attn.weight.data_ptr() for t in tuned}
    assert len(weights) == 3 and base.transformer.h[0].attn.c_attn.weight.data_ptr() not in weights


class _Sleeper:
    """A model stand-in that sleeps `s` seconds per call (any arguments)."""

    def __init__(self, s: float):
        self.s = s

    def __call__(self, **_):
        time.sleep(self.s)


def test_ratios_point_the_way_their_names_say():
    """serving_throughput's ratio is per-task seconds / mixed seconds (> 1: the mixed batch serves faster);
    batching_gain's is K calls / one call."""
    ids, task_ids, per_task = V.window(3, 1, 4, 100, torch.Generator().manual_seed(0))
    fast_mixed = V.serving_throughput(_Sleeper(0.004), [_Sleeper(0.004)] * 3, ids, task_ids, per_task, pairs=2)
    assert fast_mixed["ratio"] == pytest.approx(3.0, rel=0.5) and fast_mixed["pairs"] == 2
    slow_mixed = V.serving_throughput(_Sleeper(0.03), [_Sleeper(0.002)] * 3, ids, task_ids, per_task, pairs=2)
    assert slow_mixed["ratio"] < 0.5
    assert V.batching_gain(_Sleeper(0.004), ids, per_task, pairs=2)["ratio"] == pytest.approx(3.0, rel=0.5)
