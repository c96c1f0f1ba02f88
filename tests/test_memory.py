"""bench.memory: the model's bytes by part against live-tensor measurement on tiny models."""

import logging

import pytest
import torch

from bench import BenchError
from bench.memory import Memory, Setup, activation_bytes, estimate, measure_step, meta_model
from bench.methods import apply, make_config

logging.getLogger("transformers").setLevel(logging.ERROR)
B, T, V = 2, 16, 97


def tiny(family: str, attn: str = "sdpa", dropout: float = 0.0):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, OPTConfig, OPTForCausalLM
    torch.manual_seed(0)
    if family == "gpt2":
        cfg, cls = GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=V, n_positions=T, resid_pdrop=dropout,
                              embd_pdrop=dropout, attn_pdrop=dropout, bos_token_id=0, eos_token_id=0), GPT2LMHeadModel
    elif family == "opt":
        cfg, cls = OPTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, ffn_dim=64, vocab_size=V,
                             max_position_embeddings=T, word_embed_proj_dim=32, dropout=dropout,
                             bos_token_id=0, eos_token_id=0, pad_token_id=1), OPTForCausalLM
    else:
        cfg, cls = LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48,
                               vocab_size=V, max_position_embeddings=T, bos_token_id=0, eos_token_id=0), LlamaForCausalLM
    cfg._attn_implementation = attn
    return cls(cfg)


METHODS = {
    "full": lambda: make_config("full"),
    "lora": lambda: make_config("lora", r=4),
    "lora_all_dropout": lambda: make_config("lora", r=2, dropout=0.1, target_modules=(
        r".*(c_attn|c_proj|c_fc|q_proj|k_proj|v_proj|o_proj|out_proj|fc1|fc2|gate_proj|up_proj|down_proj)")),
    "adapters": lambda: make_config("adapters", size=8),
    "dora": lambda: make_config("dora", r=4),
    "dora_dropout": lambda: make_config("dora", r=2, dropout=0.1, target_modules=(r".*(c_fc|fc1|up_proj)")),
    "pissa": lambda: make_config("pissa", r=4),
}


@pytest.mark.parametrize("family", ["gpt2", "opt", "llama"])
@pytest.mark.parametrize("method", list(METHODS))
def test_model_matches_measurement(family, method):
    model = apply(tiny(family), METHODS[method]())
    pred = estimate(model, Setup(batch=B, seq_len=T))
    got = measure_step(model, torch.randint(0, V, (B, T))).memory
    # parameters, gradients and AdamW state are counts: exact
    assert (pred.weights, pred.gradients, pred.optimizer) == (got.weights, got.gradients, got.optimizer)
    # activations: within 1% (the model leaves out a few scalars autograd saves, e.g. nll_loss's total_weight)
    assert got.activations > 0
    assert abs(pred.activations / got.activations - 1) < 0.01, (pred.activations, got.activations)
    assert abs(pred.total / got.total - 1) < 0.1


@pytest.mark.parametrize("family", ["gpt2", "opt"])
def test_eager_attention_and_dropout(family):
    model = apply(tiny(family, attn="eager", dropout=0.1), make_config("full"))
    pred = estimate(model, Setup(batch=B, seq_len=T, attention="eager"))
    got = measure_step(model, torch.randint(0, V, (B, T))).memory
    assert abs(pred.activations / got.activations - 1) < 0.01


def test_lora_saves_fewer_activations_and_no_states_for_frozen_weights():
    full = estimate(apply(tiny("gpt2"), make_config("full")), Setup(batch=B, seq_len=T))
    lora = estimate(apply(tiny("gpt2"), make_config("lora", r=4)), Setup(batch=B, seq_len=T))
    assert lora.activations < full.activations
    assert lora.states < 0.1 * full.states
    assert lora.weights > full.weights            # the frozen weights stay, plus A and B


def test_mixed_precision_accounting_on_meta():
    from transformers import OPTConfig
    cfg = OPTConfig(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, ffn_dim=1024, vocab_size=1000,
                    max_position_embeddings=64, word_embed_proj_dim=256)
    model = meta_model(cfg)
    assert all(p.device.type == "meta" for p in model.parameters())
    n = sum(p.numel() for p in model.parameters())
    n_tensors = len(list(model.parameters()))
    mem = estimate(model, Setup(precision="mixed", batch=1, seq_len=64))
    assert mem.weights == 2 * n and mem.gradients == 2 * n
    assert mem.optimizer == 12 * n + 4 * n_tensors            # fp32 master + 2 moments, + step counters
    assert mem.weights + mem.states == 16 * n + 4 * n_tensors  # ZeRO's 16 bytes per parameter
    int8 = estimate(model, Setup(precision="mixed", frozen_int8=True, batch=1, seq_len=64))
    assert int8.weights == mem.weights and int8.int8_overhead == 0  # nothing frozen, nothing quantized
    frozen = apply(meta_model(cfg), make_config("lora", r=2))
    q = estimate(frozen, Setup(precision="mixed", frozen_int8=True, batch=1, seq_len=64))
    assert q.int8_overhead > 0 and q.weights < estimate(frozen, Setup(precision="mixed")).weights


def test_estimate_from_config_equals_estimate_from_model():
    from transformers import LlamaConfig
    cfg = LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                      vocab_size=100)
    a = estimate(cfg, Setup(batch=1, seq_len=8))
    b = estimate(meta_model(cfg), Setup(batch=1, seq_len=8))
    assert a.parts() == b.parts() and a.activations > 0


def test_bad_input_raises_bench_error():
    with pytest.raises(BenchError, match="precision"):
        estimate(tiny("gpt2"), Setup(precision="fp8"))
    with pytest.raises(BenchError, match="optimizer"):
        estimate(tiny("gpt2"), Setup(optimizer="lion"))
    with pytest.raises(BenchError, match="batch"):
        estimate(tiny("gpt2"), Setup(batch=0))
    with pytest.raises(BenchError, match="model_type"):
        from transformers import BertConfig, BertForMaskedLM
        activation_bytes(BertForMaskedLM(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                                    intermediate_size=32, vocab_size=50)))
    frozen = tiny("gpt2")
    for p in frozen.parameters():
        p.requires_grad_(False)
    with pytest.raises(BenchError, match="no trainable"):
        measure_step(frozen, torch.randint(0, V, (B, T)))
    with pytest.raises(BenchError, match="pass a torch model"):
        estimate(42)


def test_memory_parts_sum():
    m = Memory(weights=1, gradients=2, optimizer=3, activations=4, int8_overhead=5)
    assert m.total == 15 and m.states == 5 and m.parts()["total"] == 15
