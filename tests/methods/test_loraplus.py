"""LoRA+: our optimizer groups equal peft's create_loraplus_optimizer groups on the same model; train() uses them."""

from __future__ import annotations

import pytest
import torch

from bench import BenchError
from bench.methods import apply, make_config
from bench.methods.loraplus import loraplus_groups
from tests.methods.helpers import make, pair


def _as_sets(groups, names):
    return sorted((g["lr"], g["weight_decay"], frozenset(names[id(p)] for p in g["params"])) for g in groups if g["params"])


@pytest.mark.parametrize("kind,method,targets", [("gpt2", "lora", ("c_attn",)), ("llama", "dora", ("q_proj", "v_proj")),
                                                 ("bert", "lora", None)])
def test_groups_equal_peft(peft, kind, method, targets):
    from peft.optimizers import create_loraplus_optimizer
    base, ref = pair(kind)
    model = apply(base, make_config(method, r=4, target_modules=targets))
    with torch.no_grad():                                         # a trainable norm and bias too: 1-D tensors
        for n, p in model.named_parameters():
            if n.endswith(("ln_f.weight", "ln_f.bias", "norm.weight")) and "layers" not in n:
                p.requires_grad_(True)
    theirs = peft.get_peft_model(ref, peft.LoraConfig(
        r=4, target_modules=list(targets) if targets else ["query", "value"], use_dora=method == "dora",
        task_type="SEQ_CLS" if kind == "bert" else "CAUSAL_LM"))
    for n, p in theirs.base_model.model.named_parameters():
        if n.endswith(("ln_f.weight", "ln_f.bias", "norm.weight")) and "layers" not in n:
            p.requires_grad_(True)
    opt = create_loraplus_optimizer(theirs, torch.optim.AdamW, lr=1e-3, loraplus_lr_ratio=16, loraplus_weight_decay=0.1)
    canon = lambda n: (n.replace("base_model.model.", "", 1).replace(".default", "").replace(".base_layer", "")
                       .replace(".modules_to_save", "").replace(".original_module", ""))
    theirs_names = {id(p): canon(n) for n, p in theirs.named_parameters()}
    ours = loraplus_groups(model, lr=1e-3, ratio=16, weight_decay=0.1)
    ours_names = {id(p): n.replace(".lora_magnitude_vector", ".lora_magnitude_vector.weight") for n, p in model.named_parameters()}
    assert _as_sets(ours, ours_names) == _as_sets(opt.param_groups, theirs_names)
    assert {g["name"]: g["lr_scale"] for g in ours}["B"] == 16


def test_train_keeps_the_ratio_through_the_schedule():
    from bench.train import TrainConfig, train
    from bench.methods.lora import lora_layers
    rows = [{"input_ids": list(range(1, 9))}] * 4
    moved = {}
    for ratio in (None, 8.0):   # AdamW's first step moves each element by ~lr: B's moves 8x further under LoRA+
        model = apply(make("gpt2"), make_config("lora", r=2))
        a0 = lora_layers(model)[0][1].lora_A.weight.detach().clone()
        cfg = TrainConfig(lr=1e-3, steps=1, batch_size=2, loraplus_ratio=ratio, grad_clip=None, progress=False)
        train(model, rows, cfg)
        m = lora_layers(model)[0][1]
        moved[ratio] = (float((m.lora_A.weight - a0).abs().max()), float(m.lora_B.weight.abs().max()))
    assert moved[8.0][0] == pytest.approx(moved[None][0], rel=1e-3)             # A: the same lr
    assert moved[8.0][1] == pytest.approx(8 * moved[None][1], rel=1e-3)         # B: 8x the lr
    with pytest.raises(BenchError, match="loraplus_ratio"):
        TrainConfig(loraplus_ratio=0.0)
    with pytest.raises(BenchError, match="no trainable lora_B"):
        loraplus_groups(apply(make("gpt2"), make_config("bitfit")), lr=1e-3, ratio=16)


def test_groups_scale_with_the_schedule():
    model = apply(make("gpt2"), make_config("lora", r=2))
    groups = loraplus_groups(model, lr=2e-4, ratio=16)
    opt = torch.optim.AdamW(groups, lr=2e-4)
    for g in opt.param_groups:                                    # what bench.train does each step
        g["lr"] = 5e-5 * g.get("lr_scale", 1.0)
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs == {"A": 5e-5, "B": pytest.approx(8e-4)}
