"""reproductions/methods/models.py: variants share the base's weights, not its requires_grad flags."""

from __future__ import annotations

from bench.methods import apply, make_config
from reproductions.methods.models import sharing_copy, variant
from tests.methods.helpers import make


def test_sharing_copy_shares_weights_not_flags():
    base = make("gpt2")
    a, b = sharing_copy(base), sharing_copy(base)
    apply(a, make_config("lora", r=2))
    pa, pb = a.transformer.wte.weight, b.transformer.wte.weight
    assert pa.data_ptr() == pb.data_ptr() == base.transformer.wte.weight.data_ptr()
    assert not pa.requires_grad and pb.requires_grad
    assert b.lm_head.weight is pb                                    # tied weights stay tied


def test_variant_applies_the_benchmark_settings():
    base = make("gpt2")
    lora = variant("lora", base)
    assert lora.bench_method.r == 8 and tuple(lora.bench_method.target_modules) == ("c_attn",)
    own = variant("full", base, share=False)
    assert own.transformer.wte.weight.data_ptr() != base.transformer.wte.weight.data_ptr()
