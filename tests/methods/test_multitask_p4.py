"""P4's harness (reproductions/scale/p4.py p4_equivalence) on bench.methods.multitask: a mixed-task batch equals each
task alone through its own model, and the check can fail. (Moved here from tests/reproductions/test_scale.py.)"""

from __future__ import annotations

import copy

import pytest
import torch

from bench import BenchError
from bench.methods import apply, make_config, multi_lora, prompt_bank
from bench.methods.lora import lora_layers
from reproductions import scale as S
from tests.reproductions.test_scale import task_rows, tiny_gpt2


def test_p4_prompt_mixed_batch_equals_each_task_alone_and_can_fail():
    base = tiny_gpt2()
    rows = task_rows()
    prompts = torch.randn(3, 6, 32)                                       # K = 3 tasks, n = 6
    res = S.p4_equivalence(base, rows, prompts=prompts)
    assert res["max_abs_diff"] <= 1e-5 and res["examples"] == 9
    again = S.p4_equivalence(base, rows, prompts=prompts)
    assert again["max_abs_diff"] == res["max_abs_diff"]                  # deterministic
    # the same rows with another task's prompt are far off: the check can fail
    bank = prompt_bank(copy.deepcopy(base), {str(k): prompts[k] for k in range(3)})
    ids, mask = S.pad(rows[0])
    with torch.no_grad():
        wrong = bank(input_ids=ids, attention_mask=mask, task_ids=torch.ones(len(rows[0]), dtype=torch.long)).logits
        right = bank(input_ids=ids, attention_mask=mask, task_ids=torch.zeros(len(rows[0]), dtype=torch.long)).logits
    assert S.max_abs_diff_real(wrong, right, mask) > 1e-2


def test_p4_lora_per_example_adapters_equal_each_task_alone_and_can_fail():
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
    res = S.p4_equivalence(base, rows, lora_models=models)
    assert res["max_abs_diff"] <= 1e-5
    mixed = multi_lora(copy.deepcopy(base), {"0": models[0], "1": models[1]})
    ids, mask = S.pad(rows[0])
    with torch.no_grad():
        wrong = mixed(input_ids=ids, attention_mask=mask, task_ids=[1] * len(rows[0])).logits  # task 1 on task 0
        right = models[0](input_ids=ids, attention_mask=mask).logits
    assert S.max_abs_diff_real(wrong, right, mask) > 1e-2
    with pytest.raises(BenchError, match="1 adapter choices for a batch of 3"):
        mixed(input_ids=ids, attention_mask=mask, task_ids=[1])
    other = apply(copy.deepcopy(tiny_gpt2(d=16)), make_config("lora", r=2, alpha=8.0))
    with pytest.raises(BenchError, match="do not fit"):
        multi_lora(copy.deepcopy(base), {"a": models[0], "b": other})
