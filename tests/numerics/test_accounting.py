"""M2 / Q6 accounting."""

import pytest

from bench import BenchError
from bench.numerics import accounting
from bench.numerics.toy import ToyLMConfig, tiny_gpt2


def test_bloom_accounting_defaults():
    a = accounting.bloom_accounting()
    assert a["inference_weight_bytes"] == 352e9
    assert a["inference_gpus"] == 5                       # 352 / 80 = 4.4
    assert a["finetune_bytes_per_param"] == 16
    assert a["finetune_state_bytes"] == 2816e9 and a["finetune_gpus"] == 36
    assert a["finetune_over_inference_memory"] == 8
    assert accounting.bloom_accounting(inference_overhead=0.2)["inference_gpus"] == 6
    assert accounting.implied_overhead(8, 352e9) == pytest.approx(640 / 352 - 1)


def test_gpus_needed_edges():
    assert accounting.gpus_needed(160e9) == 2                 # exact fit needs no extra GPU
    assert accounting.gpus_needed(160e9 + 1) == 3
    assert accounting.gpus_needed(0) == 1
    with pytest.raises(BenchError, match="overhead"):
        accounting.gpus_needed(1e9, overhead=-0.1)
    with pytest.raises(BenchError):
        accounting.weight_bytes(10, 0)


def test_int8_weight_bytes_gpt2_by_hand():
    cfg = ToyLMConfig(vocab=50, seq_len=16, d_model=16, n_layer=2, n_head=2)
    m = tiny_gpt2(cfg)
    d, L, V, T = 16, 2, 50, 16
    lin = L * (d * 3 * d + d * d + d * 4 * d + 4 * d * d)         # c_attn, attn.c_proj, c_fc, mlp.c_proj
    rows = L * (3 * d + d + 4 * d + d)                           # output rows of those layers
    n = sum(p.numel() for p in m.parameters())                   # lm_head tied: counted once
    assert n == V * d + T * d + L * (12 * d * d + 13 * d) + 2 * d
    a = accounting.int8_weight_bytes(m)
    assert a["int8_bytes"] == lin and a["scale_bytes"] == 4 * rows
    assert a["other_bytes"] == 2 * (n - lin) and a["n_params"] == n
    assert a["ratio_fp16_over_int8"] == pytest.approx(2 * n / (lin + 4 * rows + 2 * (n - lin)))


@pytest.mark.parametrize("skip", [("lm_head",), ()])
def test_int8_weight_bytes_equals_what_quantize_model_holds_with_tied_head(skip):
    """Issue 17 K1: GPT-2's lm_head shares wte's tensor. Quantizing it gives the head its own int8 copy while
    the embedding stays in float: the accounting must count both, as the converted model holds both."""
    import copy

    from bench.numerics.int8_linear import quantize_model, storage_bytes
    m = tiny_gpt2(ToyLMConfig(vocab=50, seq_len=16, d_model=16, n_layer=1, n_head=2))
    assert m.lm_head.weight is m.transformer.wte.weight
    held = storage_bytes(quantize_model(copy.deepcopy(m), skip=skip))
    acct = accounting.int8_weight_bytes(m, skip=skip, float_bytes=4)
    assert held["int8_bytes"] == acct["int8_bytes"]
    assert held["total_bytes"] == acct["int8_total_bytes"]
    assert acct["n_params"] == sum(p.numel() for p in m.parameters())      # the model's own count: tied once
