"""Fixtures shared by the rslora tests."""

from __future__ import annotations

import pytest

from bench.data.tokenizer import train_tokenizer
from bench.data.world import build_world
from tests.reproductions.rslora.tiny import tiny_gpt2


@pytest.fixture(scope="session")
def micro_folder(tmp_path_factory):
    """A random-init micro GPT-2 with the smoke world's tokenizer, saved like a checkpoint (no pretraining)."""
    tok = train_tokenizer(build_world("smoke").tokenizer_texts(), vocab_size=512)
    model = tiny_gpt2(d=16, layers=1, vocab=len(tok))
    folder = tmp_path_factory.mktemp("micro")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
