"""The rung cache: a rung is reused when its manifest matches, else (re)built under a file lock (see bench.ladder)."""

from __future__ import annotations

import fcntl
import json
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

from bench.data.world import build_world
from bench.fileio import folder_matches
from bench.ladder.build import _quiet_hf, pretrain_rung
from bench.ladder.specs import RungSpec, cache_root, expected_hash, get_spec


def is_valid(folder: Path, spec: RungSpec) -> bool:
    """True when the manifest exists, matches the spec/world/code hash, and every file of the rung (weights,
    config, tokenizer, logs) is there byte for byte as the manifest's sha256 map says (no file missing or added).
    A manifest without that map (written before manifests hashed every file, or damaged) is not valid: the rung
    is rebuilt."""
    try:
        man = json.loads((folder / "manifest.json").read_text())
        return (isinstance(man, dict) and man.get("spec_hash") == expected_hash(spec)
                and folder_matches(folder, man.get("files"))
                and man.get("files", {}).get(man.get("weights_file")) == man.get("weights_sha256"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


@contextmanager
def _lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_rung(name: str, cache_dir=None, progress: bool = True, force: bool = False) -> Path:
    """The folder of a built rung: reused when valid, (re)built when missing, stale or corrupt."""
    spec = get_spec(name)
    folder = cache_root(cache_dir) / name
    with _lock(folder.parent / f".{name}.lock"):
        if force or not is_valid(folder, spec):
            pretrain_rung(spec, folder, progress=progress)
    return folder


def load_rung(name: str, cache_dir=None, progress: bool = True):
    """(model, tokenizer) of a rung, pretraining it first if needed. Model in eval mode, fp32, on CPU."""
    folder = ensure_rung(name, cache_dir=cache_dir, progress=progress)
    _quiet_hf(progress)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    model.loss_type = "ForCausalLM"
    return model, PreTrainedTokenizerFast.from_pretrained(folder)


def load_world(name: str):
    """The world a rung was pretrained on (for building tasks with its tokenizer)."""
    spec = get_spec(name)
    return build_world(spec.world, seed=spec.world_seed)
