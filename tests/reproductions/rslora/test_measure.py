"""reproductions/rslora/measure.py: the scaling (ours vs the formula vs peft), the per-step norms, one run."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch

from bench import BenchError
from bench.methods import apply, make_config
from bench.methods.lora import lora_layers
from bench.train import TrainConfig, collate, train
from reproductions.rslora.measure import UpdateTracker, expected_scaling, train_one
from reproductions.rslora.settings import METHODS, RANKS, Settings
from tests.reproductions.rslora.tiny import tiny_gpt2

ALPHA = 16.0


@pytest.fixture(scope="module")
def wide():
    return tiny_gpt2(d=256)          # c_attn is 256 -> 768: every rank of RANKS fits


def test_expected_scaling_formulas():
    assert expected_scaling("lora", ALPHA, 64) == 0.25
    assert expected_scaling("rslora", ALPHA, 64) == 2.0
    assert expected_scaling("lora", ALPHA, 1) == expected_scaling("rslora", ALPHA, 1)
    with pytest.raises(BenchError, match="unknown scaling method"):
        expected_scaling("dora", ALPHA, 8)


@pytest.mark.parametrize("method", METHODS)
def test_module_scaling_equals_formula_and_peft(wide, method):
    """Our LoRA layers apply alpha/r (lora) or alpha/sqrt(r) (rslora) at every rank, and peft's LoRA with the
    same r, alpha and use_rslora applies the same factor."""
    peft = pytest.importorskip("peft")
    warnings.filterwarnings("ignore")
    for r in RANKS:
        ours = apply(copy.deepcopy(wide), make_config("lora", r=r, alpha=ALPHA, target_modules=("c_attn",),
                                                       rslora=(method == "rslora")))
        got = [m.scaling for _, m in lora_layers(ours)]
        assert got and all(math.isclose(g, expected_scaling(method, ALPHA, r), rel_tol=1e-12) for g in got)
        cfg = peft.LoraConfig(r=r, lora_alpha=ALPHA, target_modules=["c_attn"], use_rslora=(method == "rslora"),
                              fan_in_fan_out=True, lora_dropout=0.0)
        theirs = peft.get_peft_model(copy.deepcopy(wide), cfg)
        ref = [m.scaling["default"] for m in theirs.modules() if hasattr(m, "scaling") and isinstance(m.scaling, dict)]
        assert len(ref) == len(got)
        assert all(math.isclose(g, p, rel_tol=1e-12) for g, p in zip(got, ref)), (r, got, ref)


def test_lora_and_rslora_share_the_init_of_a_seed():
    """The pairing the sweep relies on: same (r, seed) -> same A for both scalings."""
    base = tiny_gpt2()
    a = []
    for flag in (False, True):
        torch.manual_seed(7)
        m = apply(copy.deepcopy(base), make_config("lora", r=4, alpha=ALPHA, rslora=flag))
        a.append(lora_layers(m)[0][1].lora_A.weight.detach().clone())
    assert torch.equal(a[0], a[1])


def test_tracker_reads_raw_gradients_and_the_update_step():
    """One training step through bench.train with tight clipping: the tracker's norms equal a manual computation
    with the unclipped gradients, and update_step equals |s B1 A1 - s B0 A0|."""
    base = tiny_gpt2(d=32, layers=2)
    torch.manual_seed(0)
    model = apply(base, make_config("lora", r=4, alpha=ALPHA, rslora=True))
    with torch.no_grad():                      # B != 0, so both terms of update_grad matter
        for _, m in lora_layers(model):
            m.lora_B.weight.normal_(0, 0.05)
    g = torch.Generator().manual_seed(1)
    rows = [{"input_ids": torch.randint(1, 100, (12,), generator=g).tolist()} for _ in range(4)]

    ref = copy.deepcopy(model).train()
    ref(**collate(rows)).loss.backward()
    before = {n: (m.lora_A.weight.detach().clone(), m.lora_B.weight.detach().clone(), m.lora_A.weight.grad.clone(),
                  m.lora_B.weight.grad.clone(), m.scaling) for n, m in lora_layers(ref)}

    tracker = UpdateTracker(model)
    res = train(model, rows, TrainConfig(lr=1e-2, steps=1, batch_size=4, grad_clip=1e-4, progress=False),
                on_step=tracker)
    tracker.close()
    assert res.steps_done == 1 and len(tracker.rows) == 1 and not tracker.handles
    got = tracker.rows[0]
    ga = math.sqrt(sum(float(v[2].square().sum()) for v in before.values()))
    gb = math.sqrt(sum(float(v[3].square().sum()) for v in before.values()))
    ug = math.sqrt(sum(float((s * (gB @ A + B @ gA)).square().sum()) for A, B, gA, gB, s in before.values()))
    after = {n: (m.lora_A.weight.detach(), m.lora_B.weight.detach()) for n, m in lora_layers(model)}
    us = math.sqrt(sum(float((s * (after[n][1] @ after[n][0] - B @ A)).square().sum())
                       for n, (A, B, _, _, s) in before.items()))
    assert ga > 1e-3 and gb > 1e-3            # far above the clip: the tracker must not see clipped gradients
    assert got["grad_A"] == pytest.approx(ga, rel=1e-4)
    assert got["grad_B"] == pytest.approx(gb, rel=1e-4)
    assert got["update_grad"] == pytest.approx(ug, rel=1e-4)
    assert got["update_step"] == pytest.approx(us, rel=1e-3) and us > 0


def test_train_one_is_deterministic_and_lora_rslora_differ():
    base = tiny_gpt2(d=16)
    g = torch.Generator().manual_seed(2)
    rows = [{"input_ids": torch.randint(1, 100, (10,), generator=g).tolist()} for _ in range(8)]
    held = [collate(rows[:4])]
    s = Settings(rung="-", steps=3, batch=4, warmup=1, eval_every=0, alpha=ALPHA)
    a = train_one(base, rows, held, "rslora", 8, 0, 1e-2, s)
    b = train_one(base, rows, held, "rslora", 8, 0, 1e-2, s)
    c = train_one(base, rows, held, "lora", 8, 0, 1e-2, s)
    assert a["curves"] == b["curves"] and len(a["curves"]) == 3
    assert a["scalings"] == [ALPHA / math.sqrt(8)] and c["scalings"] == [ALPHA / 8]
    assert a["curves"][-1]["update_step"] > c["curves"][-1]["update_step"] > 0
    assert a["result"].final["heldout_loss"] != c["result"].final["heldout_loss"]
