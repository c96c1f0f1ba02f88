"""MODEL -> a transformers config: a ladder rung, a folder with config.json, the file itself, or a hub id."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import try_to_load_from_cache
from transformers import AutoConfig

from bench import BenchError
from bench.ladder.build import build_world_and_tokenizer, model_config
from bench.ladder.specs import SPECS, cache_root, get_spec
from bench.models import _hub_reachable


def load_config(spec: str):
    """A transformers config for MODEL: a ladder rung, a folder with config.json, a config.json file, or a
    hub id (local HF cache; the hub only when reachable). One-line BenchError otherwise."""
    if not spec:
        raise BenchError("memory: MODEL must be a ladder rung, a folder with config.json, or a hub id")
    if spec in SPECS:
        rung = get_spec(spec)
        folder = cache_root() / spec
        if (folder / "config.json").exists():
            return AutoConfig.from_pretrained(folder)
        return model_config(rung, build_world_and_tokenizer(rung)[1])   # same vocabulary, no pretraining
    path = Path(spec).expanduser()
    if path.is_file() or path.is_dir():
        file = path / "config.json" if path.is_dir() else path
        if not file.is_file():
            raise BenchError(f"memory: {str(path)!r} has no config.json")
        try:
            return AutoConfig.from_pretrained(str(file))
        except (OSError, ValueError, KeyError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise BenchError(f"memory: cannot read a transformers config from {str(file)!r}: {first}") from None
    if spec.startswith((".", "/", "~")) or path.suffix or spec.count("/") > 1:
        raise BenchError(f"memory: {spec!r} does not exist (and it is not a ladder rung or a hub id)")
    cached = try_to_load_from_cache(spec, "config.json")
    if isinstance(cached, str):
        return AutoConfig.from_pretrained(str(Path(cached).parent))
    if not _hub_reachable():
        raise BenchError(f"memory: {spec!r} is not a ladder rung, not a local folder and not in the local HF cache, "
                         f"and the hub cannot be reached; put its config.json in a folder and pass that folder")
    try:
        return AutoConfig.from_pretrained(spec)
    except (OSError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise BenchError(f"memory: cannot read the config of {spec!r} from the hub: {first}") from None
