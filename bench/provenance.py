"""Which base model and data a result row came from.

A row's `model` column names a model (a ladder rung, a checkpoint folder, a hub id, or a config such as
`gpt3-175b(meta)` that has no weights). Two machines can build a rung of the same name with different
weights: pretraining floats differ between CPU kinds. So every row also records

- `model_sha256`: the sha256 of the base model's weights file as it was when the run was saved (a rung's
  cache manifest, or the hash of a checkpoint folder's weights); "-" for a model without weights;
- `data_version`: the synthetic world and seed the rung's data come from, with the ladder code version
  ("world=cpu;world_seed=0;ladder=v1"); "-" where the data do not come from a rung's world.

`bench report` compares a run's hashes with the rungs now in the cache (`stale_models`); `bench regress`
names a different base model apart from a moved value.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

from bench.fileio import sha256_file
from bench.ladder.specs import LADDER_VERSION, SPECS, cache_root

NONE = "-"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_REGISTERED: dict[str, str] = {}     # model name -> weights sha256, set by loaders of named models (bench.decoder)


def register_weights(model: str, sha256: str) -> None:
    """Record the weights' sha256 behind a row `model` that is neither a rung nor a folder (e.g. a GGUF model
    dequantized into the cache, named by its file's stem): rows saved later in this process carry it."""
    _REGISTERED[str(model)] = str(sha256)


def _rung_manifest(name: str, cache_dir=None) -> dict | None:
    try:
        return json.loads((cache_root(cache_dir) / name / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def rung_sha256(name: str, cache_dir=None) -> str:
    """The weights' sha256 in the rung's cache manifest, "-" when the rung is not built (never builds it)."""
    man = _rung_manifest(name, cache_dir)
    return str(man.get("weights_sha256", NONE)) if man else NONE


@functools.lru_cache(maxsize=64)
def _folder_sha256(folder: str, mtime: float) -> str:
    for name in WEIGHT_FILES:
        if (Path(folder) / name).is_file():
            return sha256_file(Path(folder) / name)
    return NONE


def data_version(model: str) -> str:
    """The rung's world, world seed and ladder version; "-" for models that are not rungs."""
    series = model.endswith("+bos")      # a rung's spec pretrained again with <bos> (int8's natural-outlier series)
    spec = SPECS.get(model.removesuffix("+bos"))
    if spec is None:
        return NONE
    return f"world={spec.world};world_seed={spec.world_seed};ladder=v{LADDER_VERSION}" + (";series=bos" if series else "")


def model_sha256(model: str, cache_dir=None) -> str:
    """sha256 of the weights behind a row's `model` value; "-" for configs without weights.

    Models registered by their loader (`register_weights`) give the registered hash; rungs read their cache
    manifest (the hash the rung was validated with); a local checkpoint folder is
    hashed (cached per folder and modification time); hub ids and meta-device configs give "-"."""
    if model in _REGISTERED:
        return _REGISTERED[model]
    if model in SPECS:
        return rung_sha256(model, cache_dir)
    path = Path(str(model)).expanduser()
    if path.is_dir():
        return _folder_sha256(str(path.resolve()), os.path.getmtime(path))
    return NONE


def identities(models, cache_dir=None) -> dict[str, dict[str, str]]:
    """{model: {"sha256": ..., "data_version": ...}} for the distinct row models of a run."""
    return {m: {"sha256": model_sha256(m, cache_dir), "data_version": data_version(m)} for m in sorted(set(models))}


def stale_models(base_models: dict, cache_dir=None) -> list[str]:
    """Rungs whose recorded hash differs from the rung now in the cache. A rung not built here is not listed:
    there is nothing to compare it with (and a committed report must not depend on what this machine built)."""
    out = []
    for model, ident in (base_models or {}).items():
        sha = ident.get("sha256", NONE) if isinstance(ident, dict) else NONE
        here = rung_sha256(model, cache_dir) if model in SPECS and sha != NONE else NONE
        if here != NONE and here != sha:
            out.append(model)
    return out
