"""bench memory (bench.fit): predictions against measurement, public numbers, speed, and bad input."""

import argparse
import json
import logging
import time

import pytest

from bench import BenchError
from bench.fit.command import add_parser, cmd_memory
from bench.fit.options import parse_size
from bench.fit.predict import predict, summary
from bench.fit.validate import tiny_cases, validate_case

logging.getLogger("transformers").setLevel(logging.ERROR)


def run(argv, capsys):
    from bench.cli import _formatter, _Parser
    p = _Parser(prog="bench")
    add_parser(p.add_subparsers(dest="command", parser_class=_Parser), _formatter)
    rc = cmd_memory(p.parse_args(["memory", *argv]))
    return rc, capsys.readouterr().out


@pytest.fixture
def llama_dir(tmp_path):
    from transformers import LlamaConfig
    LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                intermediate_size=128, vocab_size=100, max_position_embeddings=64).save_pretrained(tmp_path)
    return str(tmp_path)


@pytest.mark.parametrize("family,method", list(tiny_cases()))
def test_predicted_peak_within_10_percent_of_profiler(family, method):
    if family == "gpt2" and method == "lora_head":
        pytest.skip("LoRA on GPT-2's tied lm_head: measured step peak ~2x the model's (open issue)")
    r = validate_case(family, method)
    for part in ("weights", "gradients", "optimizer"):  # counts; BERT: + buffers, and the unused pooler gets no grad
        # weights: + rotary buffer (a larger share of a 4-bit model's weights)
        tol = 0.06 if family == "bert" else ((2e-3 if method == "qlora" else 1e-3) if part == "weights" else 0.0)
        assert abs(r[f"{part}_pred"] - r[f"{part}_meas"]) <= tol * r[f"{part}_meas"], (part, r)
    assert r["activations_pred"] > 0
    assert abs(r["ratio"] - 1) < 0.10, r


def test_lora_on_untied_llama_head_is_modelled():  # the fault of issue 19: 0 bytes predicted before
    r = validate_case("llama", "lora_head")
    assert r["activations_pred"] > 0 and abs(r["ratio"] - 1) < 0.02


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_grad_checkpointing_within_10_percent(family):
    r = validate_case(family, "full", checkpointing=True)
    assert abs(r["ratio"] - 1) < 0.10, r


def _llama7b():
    from transformers import LlamaConfig
    return LlamaConfig(hidden_size=4096, num_hidden_layers=32, intermediate_size=11008, num_attention_heads=32,
                       vocab_size=32000, max_position_embeddings=2048)


def test_public_numbers_llama7b_and_gpt3():
    p = predict(_llama7b(), "lora", ["r=8", "target_modules=q_proj,v_proj"], seq=512)
    assert p["trainable_params"] == 4_194_304
    assert summary(p, None)["checkpoint_bytes"]["fp16"] == 8 * 2**20
    from transformers import OPTConfig   # GPT-3 175B shapes as an OPT config (as reproductions/lora/exact.py)
    gpt3 = OPTConfig(hidden_size=12288, num_hidden_layers=96, ffn_dim=4 * 12288, num_attention_heads=96,
                     vocab_size=50257, max_position_embeddings=2048, word_embed_proj_dim=12288)
    p = predict(gpt3, "lora", ["r=4", "target_modules=q_proj,k_proj,v_proj,out_proj"], seq=2048)
    assert p["trainable_params"] == 37_748_736


def test_70b_answers_in_under_5_seconds():
    from transformers import LlamaConfig
    cfg = LlamaConfig(hidden_size=8192, num_hidden_layers=80, intermediate_size=28672, num_attention_heads=64,
                      num_key_value_heads=8, vocab_size=32000, max_position_embeddings=4096)
    predict(_llama7b(), "full", seq=8)                           # imports warm
    t0 = time.perf_counter()
    p = predict(cfg, "lora", ["r=8"], seq=4096)
    assert time.perf_counter() - t0 < 5
    assert 68e9 < p["total_params"] < 70e9 and p["method"].activations > 0


def test_cli_table_json_and_plot(llama_dir, capsys, tmp_path):
    rc, out = run([llama_dir, "--method", "lora", "--set", "r=4", "--gpu-memory", "24GiB", "--seq", "32",
                   "--plot", str(tmp_path / "m.png")], capsys)
    assert rc == 0 and "total (peak)" in out and "GPUs of 24GiB: 1 for lora" in out
    assert (tmp_path / "m.png").stat().st_size > 0
    rc, out = run([llama_dir, "--method", "prefix", "--json", "--seq", "32", "--grad-checkpointing"], capsys)
    info = json.loads(out)
    assert info["bytes"]["total"]["ratio"] > 0 and info["setup"]["virtual_tokens"] == 10  # MLP > tiny model


def test_bert_minilm_shapes(tmp_path, capsys):
    from transformers import BertConfig
    BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536,
               vocab_size=30522).save_pretrained(tmp_path)
    rc, out = run([str(tmp_path / "config.json"), "--method", "lora", "--seq", "128", "--json"], capsys)
    info = json.loads(out)
    assert info["model_type"] == "bert" and 22e6 < info["total_params"] < 23e6


@pytest.mark.parametrize("argv,match", [
    (["--set", "r=0"], "rank r must be a positive"),
    (["--set", "r=1000"], "exceeds min"),
    (["--set", "target_modules=qkv"], "names available: .*q_proj"),
    (["--method", "vera"], "unknown method"),
    (["--batch", "0"], r"--batch: got 0; accepts a finite number >= 1 and <= 1e\+07"),
    (["--batch", "100000000000"], r"--batch: got 100000000000; accepts"),
    (["--seq", "-3"], r"--seq: got -3; accepts a finite number >= 1"),
    (["--set", "dropout=nan"], r"^lora: dropout.*nan"),
    (["--set", "alpha=inf"], r"^lora: alpha: got inf; accepts"),
    (["--seq", "65"], "exceeds the model's 64 positions"),
    (["--method", "prompt", "--seq", "60"], "virtual tokens exceeds"),
    (["--gpu-memory", "24 gigs"], "cannot read memory size"),
    (["--set", "rank=8"], "unknown option 'rank'"),
])
def test_bad_input_is_one_bench_error(llama_dir, capsys, argv, match):
    with pytest.raises(BenchError, match=match):
        run([llama_dir, *argv], capsys)


def test_unknown_family_and_offline_hub_id(tmp_path, capsys, monkeypatch):
    from transformers import T5Config
    T5Config(d_model=32, num_layers=1, num_heads=2, d_ff=64, vocab_size=50).save_pretrained(tmp_path)
    with pytest.raises(BenchError, match="no activation model for model_type 't5'"):
        run([str(tmp_path)], capsys)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BenchError, match="'someone/not-cached-model'.*config.json"):
        run(["someone/not-cached-model"], capsys)


def test_parse_size():
    assert parse_size("24GiB") == 24 * 2**30 and parse_size("80GB") == 80 * 10**9 and parse_size("512 MiB") == 2**29
    with pytest.raises(BenchError):
        parse_size("0GB")


def test_cli_main_wiring(llama_dir, capsys):
    from bench.cli import main
    assert main(["memory", llama_dir, "--seq", "16"]) == 0
    assert main(["memory", llama_dir, "--batch", "0"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_base_4bit_counts_nf4_with_double_quantization_and_matches_qlora():
    """--base-4bit on LoRA predicts the bytes a QLoRA model's NF4 buffers hold (0.5 B per weight + an 8-bit
    absmax per 64 + fp32 per 256 blocks + an offset); a 65B-class config answers in seconds."""
    from transformers import LlamaConfig

    from bench.numerics.nf4 import storage_bytes
    cfg = _llama7b()
    lora4 = predict(cfg, "lora", ["r=8"], "fp32", base_4bit=True)["method"]
    qlora = predict(cfg, "qlora", ["r=8"], "fp32")["method"]
    assert lora4.weights == qlora.weights and lora4.dequant_transient == qlora.dequant_transient > 0
    plain = predict(cfg, "lora", ["r=8"], "fp32")["method"]
    d, ff, L = 4096, 11008, 32
    linear = L * (4 * d * d + 3 * d * ff)
    assert plain.weights - lora4.weights == 4 * linear - L * (4 * storage_bytes(d * d) + 3 * storage_bytes(d * ff))
    with pytest.raises(BenchError, match="not both"):
        predict(cfg, "lora", [], base_int8=True, base_4bit=True)
    t0 = time.perf_counter()
    big = LlamaConfig(hidden_size=8192, num_hidden_layers=80, intermediate_size=22016, num_attention_heads=64,
                      vocab_size=32000, max_position_embeddings=2048)          # LLaMA-65B's shapes
    info = summary(predict(big, "qlora", ["r=64"], "bf16", seq=512), None)
    assert time.perf_counter() - t0 < 30                                       # seconds on a loaded machine
    assert 30 * 2**30 < info["bytes"]["weights"]["method"] < 40 * 2**30          # ~0.52 B/param of 65B
    assert info["setup"]["base_4bit"]                  # QLoRA quantizes its own base: read from the model


def test_method_options_come_from_the_registry():
    """`bench memory`'s --method: a method (its config's defaults) or a variant preset, which brings the fields by
    which it differs from its method's own preset (MethodSpec.presets); a method registered in one place, with a
    variant of its own, needs no edit in bench.fit."""
    from dataclasses import dataclass

    from bench.fit.options import method_choices, method_options
    from bench.methods import registry
    from bench.methods.lora import LoraConfig

    assert method_options("lora", ["r=4"]) == ("lora", {"r": 4})
    assert method_options("rslora", []) == ("lora", {"rslora": True})
    assert method_options("rslora", ["rslora=false"]) == ("lora", {"rslora": False})       # --set on top
    assert method_options("dora", ["target_modules=q_.*"]) == ("dora", {"target_modules": "q_.*"})   # a regex
    assert method_options("prompt", ["num_virtual_tokens=3"]) == ("prompt", {"num_virtual_tokens": 3})

    @dataclass
    class WideConfig(LoraConfig):
        name = "wide"

    registry.register(registry.MethodSpec(WideConfig, presets={"wide": {"r": 2, "alpha": 4.0},
                                                               "wide-rs": {"r": 2, "alpha": 4.0, "rslora": True,
                                                                           "dropout": 0.1}}))
    try:
        assert {"wide", "wide-rs"} <= set(method_choices())
        assert method_options("wide", ["r=16"]) == ("wide", {"r": 16})
        assert method_options("wide-rs", ["target_modules=c_.*"]) == \
            ("wide", {"rslora": True, "dropout": 0.1, "target_modules": "c_.*"})
        with pytest.raises(BenchError, match="unknown option 'depth'"):
            method_options("wide-rs", ["depth=3"])
    finally:
        registry.unregister("wide")
    with pytest.raises(BenchError, match="unknown method 'wide-rs'"):
        method_options("wide-rs", [])
