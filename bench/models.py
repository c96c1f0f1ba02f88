"""Load a model by name: a ladder rung, a local HF checkpoint folder, or a hub id (from the local HF cache).

The harnesses take `--model` through here, so paper-scale checkpoints (gpt2-medium, ...) run through the
same code as the embedded ladder. This machine has no hub access: a hub id that is not in the local cache
fails fast with one line that says what to do, never a stack trace or a long network timeout.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import torch

from bench import BenchError


def _hub_reachable(timeout: float = 2.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    ok = []

    def probe():  # DNS lookups ignore socket timeouts, so probe in a thread and stop waiting after `timeout`
        try:
            with socket.create_connection(("huggingface.co", 443), timeout=timeout):
                ok.append(True)
        except OSError:
            pass

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    return bool(ok)


def _from_folder(folder: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BenchError(f"cannot load a causal LM with its tokenizer from {str(folder)!r}: {first}") from None
    return model.eval(), tok


def n_positions(model) -> int:
    """The model's context length in tokens (its position table); 2**20, effectively unbounded, when its config
    names none (a rotary model without max_position_embeddings)."""
    from bench.memory.inputs import max_positions
    return max_positions(model.config) or 1 << 20


def vocab_size(model) -> int:
    """Rows of the model's input embedding: the token ids it accepts are 0 .. vocab_size - 1."""
    return model.get_input_embeddings().weight.shape[0]


def load_model(spec: str, ladder: str = "cpu"):
    """(model, tokenizer) for `spec`:
    - a ladder rung name ("cpu-1m", "smoke-a"; "smallest" / "largest" of `ladder`), pretrained if not cached;
    - a local folder written by save_pretrained (config, weights, tokenizer);
    - a hub id ("gpt2"), only from the local HF cache unless the hub is reachable.
    """
    from bench import ladder as L
    if not spec or not isinstance(spec, str):
        raise BenchError(f"--model needs a rung name, a checkpoint folder or a hub id, got {spec!r}")
    if spec in ("smallest", "largest"):
        names = L.rung_names(ladder)
        spec = names[0] if spec == "smallest" else names[-1]
    if spec in L.SPECS:
        return L.load_rung(spec)
    path = Path(spec).expanduser()
    if path.is_dir():
        return _from_folder(path)
    if spec.startswith((".", "/", "~")) or path.suffix or spec.count("/") > 1:
        raise BenchError(f"model folder {spec!r} does not exist (and it is not a ladder rung or a hub id)")
    from huggingface_hub import try_to_load_from_cache
    from transformers import AutoModelForCausalLM, AutoTokenizer
    cached = try_to_load_from_cache(spec, "config.json")
    if isinstance(cached, str):  # in the local HF cache: load its snapshot folder, no network
        return _from_folder(Path(cached).parent)
    if not _hub_reachable():
        raise BenchError(f"model {spec!r} is not a ladder rung ({', '.join(L.rung_names(ladder))}), not a local "
                         f"folder, and not in the local HF cache, and the hub cannot be reached; download it on a "
                         f"machine with network and pass --model <local folder>")
    try:
        model = AutoModelForCausalLM.from_pretrained(spec, dtype=torch.float32)
        return model.eval(), AutoTokenizer.from_pretrained(spec)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BenchError(f"cannot load model {spec!r} from the hub: {first}") from None
