"""The embedded model ladder: GPT-2-style causal LMs pretrained here, on the synthetic world's corpus.

Every toy-scale claim is measured over a ladder of sizes (the lecture's claims are about how methods behave
as models grow). No hub weights are needed: each rung is built from a `transformers` GPT2Config and
pretrained by `bench.train.train` on `bench.data.world`'s corpus, with EQUAL tokens per rung within a
ladder, so size is the only thing that varies.

Cache: `$BENCH_CACHE` or `~/.cache/bench`, one folder per rung under `ladder/<name>/` with config.json,
model.safetensors, tokenizer files, train_log.json, eval.json and manifest.json. The manifest (sha256 of every
file of the rung + hash of the spec, the world and the code version) is written last and atomically: a rung
counts as built only when its manifest matches, so an interrupted build, or any damaged, missing or added file,
means a rebuild.
A file lock makes concurrent `ensure_rung` calls build once.

Modules: `specs` (RungSpec, LADDERS, SPECS, cache_root: light, no torch), `build` (pretraining one rung),
`probes` (held-out perplexity, zero-shot probes), `cache` (is_valid, ensure_rung, load_rung, load_world),
`report` (pretrain_ladder: `bench pretrain`'s report). The package exports what most callers use: a rung's spec
and names, and a built rung (`from bench import ladder as L; L.load_rung("cpu-1m")`).
"""

from bench.ladder.specs import LADDER_VERSION, LADDERS, SPECS, RungSpec, cache_root, get_spec, rung_names

_CACHE = ("ensure_rung", "load_rung", "load_world")


def __getattr__(name: str):
    """ensure_rung, load_rung, load_world from bench.ladder.cache, imported on first use, not with the package:
    the specs are read at every start (bench.provenance, via bench.schema), the cache brings torch and transformers."""
    if name in _CACHE:
        from bench.ladder import cache
        return getattr(cache, name)
    raise AttributeError(f"module 'bench.ladder' has no attribute {name!r}")

__all__ = ["LADDERS", "LADDER_VERSION", "RungSpec", "SPECS", "cache_root", "ensure_rung", "get_spec", "load_rung",
           "load_world", "rung_names"]
