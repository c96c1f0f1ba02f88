"""The peft parity harness: every registered method with a peft counterpart (SPEC.peft) against peft's model
built from it, on a tiny GPT-2. Used by test_peft_parity.py (one case per method) and by test_plugin.py (a
method registered later is checked the same way). The methods' own test files go further (outputs, gradients,
AdamW steps on several families); this is what every method with a counterpart must pass:
- the same trainable parameter count as peft's model;
- for a method saved in peft's format (SPEC.save_format): ours -> disk -> peft's PeftModel.from_pretrained gives
  our outputs (when both run on the same base, i.e. no SPEC.peft_base), and peft's save_pretrained -> disk ->
  our load_trained gives them back."""

from __future__ import annotations

import copy

import torch

from bench.methods import apply, load_trained, make_config, registry, save_trained, trainable_parameters
from tests.methods.helpers import assert_rel_close, batch, make


def parity_cases() -> list[str]:
    """The methods checked against peft: read from the registry at each call."""
    return list(registry.WITH_PEFT)


def small_config(name: str):
    """The method's first `bench memory --validate` case (sized for tiny models), else its defaults."""
    spec = registry.get(name)
    kw = next(iter(spec.tiny.values()), {})
    return make_config(name, **kw)


def _perturb(model, seed=3):
    """Stand-in for training: move every trainable tensor off its init (B != 0, m != ||W||)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)


def check_against_peft(peft, name: str, tmp_path) -> None:
    spec = registry.get(name)
    cfg = small_config(name)
    ours = apply(make("gpt2"), cfg)
    theirs = registry.peft_model(copy.deepcopy(cfg), make("gpt2"))
    assert trainable_parameters(ours)[0] == theirs.get_nb_trainable_parameters()[0], name
    if spec.save_format is None:
        return
    _perturb(ours)
    ids, mask, _ = batch("gpt2")
    want = ours(input_ids=ids, attention_mask=mask).logits
    save_trained(ours, tmp_path / "ours")
    loaded = peft.PeftModel.from_pretrained(make("gpt2"), tmp_path / "ours")
    if spec.peft_base is None:
        assert_rel_close(loaded(input_ids=ids, attention_mask=mask).logits, want, rtol=1e-5)
    loaded.save_pretrained(tmp_path / "peft")
    again = load_trained(make("gpt2"), tmp_path / "peft")
    assert again.bench_method.name == name
    assert_rel_close(again(input_ids=ids, attention_mask=mask).logits, want, rtol=1e-5)
