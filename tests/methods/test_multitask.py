"""bench.methods.multitask: mixed-task batches (several LoRA adapters, a prompt bank) equal each task's rows run
alone with that task's single adapter / prompt; peft's mixed-batch adapter_names agrees; bad input fails."""

from __future__ import annotations

import copy

import pytest
import torch

from bench import BenchError
from bench.methods import apply, make_config, multi_lora, prompt_bank, save_trained
from bench.methods.lora import lora_layers
from tests.methods.helpers import VOCAB, make

KINDS = ("gpt2", "llama")


def adapters(base, ranks=(2, 4, 2), seed=0, alphas=None):
    """Task models with LoRA (different ranks / scalings) and a random B, so each adapter changes the output."""
    out = {}
    for k, r in enumerate(ranks):
        torch.manual_seed(seed + k)
        m = apply(copy.deepcopy(base), make_config("lora", r=r, alpha=(alphas or {}).get(k, 8.0))).eval()
        with torch.no_grad():
            for _, layer in lora_layers(m):
                layer.lora_B.weight.normal_(0.0, 0.2)
        out[f"task{k}"] = m
    return out


def inputs(B=7, T=9, seed=3, left=False):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    if left:
        mask[1, :3] = 0
    else:
        mask[min(2, B - 1), -4:] = 0
    return ids, mask


def worst_row_diff(out, ref_of_row, ids, mask) -> float:
    worst = 0.0
    for b in range(ids.shape[0]):
        keep = mask[b].bool()
        with torch.no_grad():
            ref = ref_of_row(b)(input_ids=ids[b:b + 1], attention_mask=mask[b:b + 1]).logits[0]
        worst = max(worst, float((out[b][keep] - ref[keep]).abs().max()))
    return worst


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("strategy", ("stacked", "grouped"))
def test_mixed_lora_batch_equals_each_adapter_alone(kind, strategy):
    base = make(kind)
    ads = adapters(base, alphas={1: 32.0})
    mm = multi_lora(copy.deepcopy(base), ads, strategy=strategy)
    ids, mask = inputs()
    names = ["task0", "task1", "task2", "__base__", "task1", "task0", "task2"]
    with torch.no_grad():
        out = mm(input_ids=ids, attention_mask=mask, adapter_names=names).logits
        by_ids = mm(input_ids=ids, attention_mask=mask, task_ids=torch.tensor([0, 1, 2, -1, 1, 0, 2])).logits
    refs = {**ads, "__base__": base.eval()}
    assert worst_row_diff(out, lambda b: refs[names[b]], ids, mask) <= 1e-5
    assert torch.equal(out, by_ids)
    # and it can fail: the wrong adapter for a row is far off
    with torch.no_grad():
        wrong = mm(input_ids=ids, attention_mask=mask, adapter_names=["task1"] * 7).logits
    assert float((wrong[0] - out[0]).abs().max()) > 1e-2


def test_stacked_and_grouped_agree_and_sorted_rows_use_slices():
    base = make("gpt2")
    ads = adapters(base)
    st, gr = (multi_lora(copy.deepcopy(base), ads, strategy=s) for s in ("stacked", "grouped"))
    ids, mask = inputs()
    tid = torch.tensor([0, 0, 1, 1, 1, 2, 2])                          # sorted: each group is a slice
    with torch.no_grad():
        a = st(input_ids=ids, attention_mask=mask, task_ids=tid).logits
        b = gr(input_ids=ids, attention_mask=mask, task_ids=tid).logits
    assert float((a - b).abs().max()) <= 1e-5
    assert all(isinstance(rows, slice) for _, rows in gr.route_for(7, task_ids=tid).groups)


def test_multi_lora_from_saved_folders_and_generate(tmp_path):
    base = make("gpt2", init=0.3)
    ads = adapters(base)
    paths = {n: save_trained(m, tmp_path / n) for n, m in ads.items()}
    mm = multi_lora(copy.deepcopy(base), paths)
    ids, mask = inputs(B=3)
    mask[:] = 1
    names = ["task2", "task0", "task1"]
    with torch.no_grad():
        out = mm(input_ids=ids, attention_mask=mask, adapter_names=names).logits
    assert worst_row_diff(out, lambda b: ads[names[b]], ids, mask) <= 1e-5
    gen = mm.generate(input_ids=ids, attention_mask=mask, adapter_names=names, max_new_tokens=4, do_sample=False,
                      pad_token_id=0)
    for b in range(3):
        one = ads[names[b]].generate(input_ids=ids[b:b + 1], attention_mask=mask[b:b + 1], max_new_tokens=4,
                                     do_sample=False, pad_token_id=0)
        assert torch.equal(gen[b], one[0])


@pytest.mark.parametrize("kind", KINDS)
def test_matches_peft_mixed_batch_adapter_names(kind, peft):
    base = make(kind)
    ads = adapters(base, ranks=(2, 2))
    pm = None
    for name, m in ads.items():
        targets = ["c_attn"] if kind == "gpt2" else ["q_proj", "v_proj"]
        cfg = peft.LoraConfig(r=2, lora_alpha=8.0, target_modules=targets, fan_in_fan_out=kind == "gpt2", lora_dropout=0.0, task_type="CAUSAL_LM")
        if pm is None:
            pm = peft.get_peft_model(copy.deepcopy(base), cfg, adapter_name=name)
        else:
            pm.add_adapter(name, cfg)
        ours = dict(lora_layers(m))
        for mod_name, mod in pm.base_model.model.named_modules():
            if mod_name in ours and hasattr(mod, "lora_A"):
                with torch.no_grad():
                    mod.lora_A[name].weight.copy_(ours[mod_name].lora_A.weight)
                    mod.lora_B[name].weight.copy_(ours[mod_name].lora_B.weight)
    pm.eval()
    mm = multi_lora(copy.deepcopy(base), ads)
    ids, mask = inputs(B=5)
    names = ["task1", "__base__", "task0", "task1", "task0"]
    with torch.no_grad():
        theirs = pm(input_ids=ids, attention_mask=mask, adapter_names=names).logits
        ours = mm(input_ids=ids, attention_mask=mask, adapter_names=names).logits
    keep = mask.bool()
    assert float((theirs[keep] - ours[keep]).abs().max()) <= 1e-5


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("left", (False, True))
def test_prompt_bank_equals_each_prompt_alone(kind, left):
    base = make(kind)
    singles = [apply(copy.deepcopy(base), make_config("prompt", num_virtual_tokens=3, init="random")).eval()
               for _ in range(3)]
    bank = prompt_bank(copy.deepcopy(base), {f"t{k}": m for k, m in enumerate(singles)})
    ids, mask = inputs(left=left)
    tid = torch.tensor([2, 0, 1, 1, 0, 2, 0])
    with torch.no_grad():
        out = bank(input_ids=ids, attention_mask=mask, task_ids=tid).logits
    assert out.shape == (7, 9, VOCAB)
    assert worst_row_diff(out, lambda b: singles[int(tid[b])], ids, mask) <= 1e-5
    with torch.no_grad():
        same = bank(input_ids=ids, attention_mask=mask, adapter_names=[f"t{int(k)}" for k in tid]).logits
    assert torch.equal(out, same)


def test_prompt_bank_generate_matches_single_prompt():
    base = make("gpt2", init=0.3)
    singles = [apply(copy.deepcopy(base), make_config("prompt", num_virtual_tokens=2, init="random")).eval()
               for _ in range(2)]
    bank = prompt_bank(copy.deepcopy(base), {"a": singles[0], "b": singles[1].prompt})
    ids, mask = inputs(B=2)
    mask[:] = 1
    gen = bank.generate(input_ids=ids, attention_mask=mask, task_ids=[1, 0], max_new_tokens=3, do_sample=False,
                        pad_token_id=0)
    for b, k in enumerate((1, 0)):
        one = singles[k].generate(input_ids=ids[b:b + 1], attention_mask=mask[b:b + 1], max_new_tokens=3,
                                  do_sample=False, pad_token_id=0)
        assert torch.equal(gen[b], one[0])


def test_bad_input_is_one_clear_error():
    base = make("gpt2")
    ads = adapters(base, ranks=(2, 2))
    mm = multi_lora(copy.deepcopy(base), ads)
    ids, mask = inputs(B=2)
    with pytest.raises(BenchError, match="unknown adapter name.*'nope'.*known: task0, task1, __base__"):
        mm(input_ids=ids, adapter_names=["task0", "nope"])
    with pytest.raises(BenchError, match="exactly one of adapter_names"):
        mm(input_ids=ids)
    with pytest.raises(BenchError, match="3 adapter choices for a batch of 2"):
        mm(input_ids=ids, task_ids=[0, 1, 0])
    with pytest.raises(BenchError, match=r"task_ids must lie in \[-1, 2\)"):
        mm(input_ids=ids, task_ids=[0, 5])
    with pytest.raises(BenchError, match="for inference"):
        mm.train()(input_ids=ids, task_ids=[0, 1])
    llama_ad = adapters(make("llama"), ranks=(2,))["task0"]
    with pytest.raises(BenchError, match="targets other modules"):
        multi_lora(copy.deepcopy(base), {"a": ads["task0"], "b": llama_ad})
    with pytest.raises(BenchError, match="reserved"):
        multi_lora(copy.deepcopy(base), {"__base__": ads["task0"]})
    p2 = torch.zeros(2, 32)
    with pytest.raises(BenchError, match="differ in shape"):
        prompt_bank(copy.deepcopy(base), {"a": p2, "b": torch.zeros(3, 32)})
    with pytest.raises(BenchError, match="width 16, the model 32"):
        prompt_bank(copy.deepcopy(base), {"a": torch.zeros(2, 16)})
