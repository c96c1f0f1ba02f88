"""reproductions/decoder/lora.py and our methods against peft on the real SmolLM2 weights (dequantized from its
4-bit GGUF), the model cut to its first 2 layers: LoRA, prompt tuning and prefix tuning give peft's outputs to
float tolerance; LoRA's merge is exact and unload leaves the base architecture. The first test of a fresh
machine also builds the cached fp32 checkpoint (bench.decoder, ~20 s once); then each test takes a few seconds."""

from __future__ import annotations

import copy

import pytest
import torch

from bench import decoder
from bench.methods import apply, make_config, save_trained, trainable_parameters
from tests.methods.helpers import assert_rel_close
from tests.methods.test_prefix import _copy_to_peft
from tests.reproductions.decoder.tiny import needs_smollm2

pytestmark = needs_smollm2
N = 4


@pytest.fixture(scope="module")
def real2():
    """(the real model cut to 2 layers, eval mode; a batch of 2 x 16 real tokens)."""
    from bench.data import speeches
    lm, tok, _ = decoder.load_decoder(None, layers=2)
    return lm.eval(), speeches.chunks(tok, 2, 16)


def _perturb(model, seed=3, scale=0.02):
    """Stand-in for training: move every trainable tensor off its init (LoRA's B != 0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * scale)


def test_lora_matches_peft_and_merges_exactly(real2, tmp_path):
    peft = pytest.importorskip("peft")
    from reproductions.decoder.lora import adapt
    from reproductions.lora.merge import after_training
    lm, ids = real2
    ours = adapt(lm, "lora").eval()
    with torch.no_grad():
        assert torch.equal(ours(input_ids=ids).logits, lm(input_ids=ids).logits)      # L1: B = 0 at init
    _perturb(ours)
    save_trained(ours, tmp_path / "a")
    theirs = peft.PeftModel.from_pretrained(copy.deepcopy(lm), tmp_path / "a").eval()
    assert trainable_parameters(ours)[0] == 2 * 8 * (576 + 576) + 2 * 8 * (576 + 192)   # q: 576->576, v: 576->192
    with torch.no_grad():
        want = ours(input_ids=ids).logits
        assert_rel_close(theirs(input_ids=ids).logits, want, rtol=1e-5)
    got = after_training(ours, lm, ids)
    assert got["l5_unloaded_extra_params"] == 0 and got["l1_merged_delta_max_abs_err"] <= 1e-6
    assert got["l5_merged_vs_unmerged_max_abs_diff"] <= 1e-4


def test_prompt_tuning_matches_peft(real2):
    peft = pytest.importorskip("peft")
    lm, ids = real2
    ours = apply(copy.deepcopy(lm), make_config("prompt", num_virtual_tokens=N, init="random")).eval()
    theirs = peft.get_peft_model(copy.deepcopy(lm), peft.PromptTuningConfig(num_virtual_tokens=N,
                                                                             task_type="CAUSAL_LM")).eval()
    with torch.no_grad():
        theirs.prompt_encoder["default"].embedding.weight.copy_(ours.prompt)
        a, b = ours(input_ids=ids, labels=ids), theirs(input_ids=ids, labels=ids)
    assert trainable_parameters(ours) == theirs.get_nb_trainable_parameters()
    assert_rel_close(a.logits, b.logits[:, N:], rtol=1e-5)
    assert_rel_close(a.loss, b.loss, rtol=1e-5)


@pytest.mark.parametrize("reparam", [False, True])
def test_prefix_tuning_matches_peft(real2, reparam):
    peft = pytest.importorskip("peft")
    lm, ids = real2
    ours = apply(copy.deepcopy(lm), make_config("prefix", num_virtual_tokens=N, reparam=reparam,
                                                reparam_hidden=32)).eval()
    cfg = peft.PrefixTuningConfig(num_virtual_tokens=N, prefix_projection=reparam, encoder_hidden_size=32,
                                  task_type="CAUSAL_LM")
    theirs = peft.get_peft_model(copy.deepcopy(lm), cfg).eval()
    _copy_to_peft(ours, theirs)          # the toy parity test's copy of our prefix weights into peft's encoder
    with torch.no_grad():
        a, b = ours(input_ids=ids, labels=ids), theirs(input_ids=ids, labels=ids)
    assert trainable_parameters(ours) == theirs.get_nb_trainable_parameters()
    assert_rel_close(a.logits, b.logits, rtol=1e-5)
    assert_rel_close(a.loss, b.loss, rtol=1e-5)


def test_memory_rows_measure_every_method_against_full_ft(real2):
    from bench.schema import Recorder
    from reproductions.decoder.lora import METHODS, memory_part
    from reproductions.decoder.settings import SETTINGS
    lm, ids = real2
    rec = Recorder(group="decoder", profile="smoke", out_dir=None, claims=["L3", "A2"])
    common = {"model": "m", "data": "d", "params_base": {}}
    memory_part(rec, lm, ids, SETTINGS["smoke"], common)
    df = rec.frame()
    total = df[(df["metric"] == "memory_ratio_vs_full") & df["params"].str.contains('"part":"total"')]
    assert set(total["method"]) == set(METHODS) - {"full"}
    assert set(total["claim"]) == {"L3", "A2"} and (total["value"] > 0).all()
    full = df[(df["metric"] == "trainable_params") & (df["method"] == "full")]["value"].item()
    assert full == sum(p.numel() for p in lm.parameters())
