"""The ladder's rungs as data: their specs (RungSpec, LADDERS, SPECS), their names, and where the cache keeps them.

Imports nothing heavy itself: bench.provenance reads SPECS and LADDER_VERSION for every row it stamps.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from bench import BenchError
from bench.data.world import build_world
from bench.paths import PATHS

LADDER_VERSION = 1   # bump when pretraining code changes what a rung contains (invalidates caches)


@dataclass(frozen=True)
class RungSpec:
    name: str
    n_embd: int
    n_layer: int
    n_head: int
    tokens: int                  # pretraining token budget (equal within a ladder)
    batch_size: int = 32         # sequences per step
    seq_len: int = 128
    lr: float = 2e-3             # peak lr; cosine to 10%, warmup `warmup` steps
    warmup: int = 50
    world: str = "cpu"           # bench.data.world profile
    world_seed: int = 0
    seed: int = 0                # init + batch order
    vocab_cap: int = 2048

    def non_embedding_params(self) -> int:
        """Transformer-block + final-norm parameters (GPT-2: 12 d^2 + 13 d per layer, + 2 d)."""
        d = self.n_embd
        return self.n_layer * (12 * d * d + 13 * d) + 2 * d

    def hash(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def _rung(name, d, L, H, tokens, world, **kw) -> RungSpec:
    return RungSpec(name=name, n_embd=d, n_layer=L, n_head=H, tokens=tokens, world=world, **kw)


LADDERS: dict[str, list[RungSpec]] = {
    # Tests and CI: two tiny rungs on a 60-person world, seconds each.
    "smoke": [
        _rung("smoke-a", 32, 2, 2, 120_000, "smoke", batch_size=16, seq_len=64, lr=3e-3, warmup=10),
        _rung("smoke-b", 64, 2, 2, 120_000, "smoke", batch_size=16, seq_len=64, lr=3e-3, warmup=10),
    ],
    # The default: five rungs spanning ~40x in non-embedding parameters, equal tokens (1.2M, ~75 epochs of a
    # 160-person world), batch 8 x 128: knowledge storage needs optimizer steps as much as tokens (a pilot with
    # batch 16 stored half as much). Built here in ~45 min on 2 cores shared with other jobs (1 thread each).
    "cpu": [
        _rung("cpu-0.1m", 48, 4, 3, 1_200_000, "cpu", batch_size=8, lr=3e-3),
        _rung("cpu-0.3m", 64, 6, 4, 1_200_000, "cpu", batch_size=8, lr=3e-3),
        _rung("cpu-1m", 128, 5, 4, 1_200_000, "cpu", batch_size=8, lr=2e-3),
        _rung("cpu-2.5m", 160, 8, 5, 1_200_000, "cpu", batch_size=8, lr=2e-3),
        _rung("cpu-5m", 256, 6, 8, 1_200_000, "cpu", batch_size=8, lr=1.5e-3),
    ],
    # For a future GPU session (specs only; not built or tested here).
    "gpu": [
        _rung("gpu-3m", 192, 7, 6, 40_000_000, "gpu", batch_size=64, lr=1.5e-3, warmup=200),
        _rung("gpu-10m", 320, 8, 8, 40_000_000, "gpu", batch_size=64, lr=1e-3, warmup=200),
        _rung("gpu-30m", 512, 10, 8, 40_000_000, "gpu", batch_size=64, lr=8e-4, warmup=200),
        _rung("gpu-85m", 768, 12, 12, 40_000_000, "gpu", batch_size=64, lr=6e-4, warmup=200),
        _rung("gpu-300m", 1024, 24, 16, 40_000_000, "gpu", batch_size=64, lr=3e-4, warmup=200),
    ],
}
SPECS = {s.name: s for rungs in LADDERS.values() for s in rungs}
# A second pretraining run of a rung (issue 14: how much of a trend one pretraining run could fake): the same spec
# but its init and batch order from seed 1, named "<rung>-s1". Not part of any ladder; built on first use.
REPLICAS = {f"{s.name}-s1": replace(s, name=f"{s.name}-s1", seed=1) for rungs in LADDERS.values() for s in rungs}
SPECS.update(REPLICAS)


def rung_names(ladder: str) -> list[str]:
    if ladder not in LADDERS:
        raise BenchError(f"unknown ladder {ladder!r}; choose one of {', '.join(LADDERS)}")
    return [s.name for s in LADDERS[ladder]]


def get_spec(name: str) -> RungSpec:
    if name not in SPECS:
        raise BenchError(f"unknown ladder rung {name!r}; rungs: {', '.join(SPECS)}")
    return SPECS[name]


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """The rungs' cache folder: `<cache_dir>/ladder`, else `<bench.paths.PATHS.cache>/ladder` ($BENCH_CACHE, else
    ~/.cache/bench)."""
    return Path(cache_dir or PATHS.cache).expanduser() / "ladder"


def expected_hash(spec: RungSpec) -> str:
    """What a rung's manifest must say (`spec_hash`): its spec, its world's fingerprint and LADDER_VERSION."""
    world_fp = build_world(spec.world, seed=spec.world_seed).fingerprint()
    return hashlib.sha256(f"{spec.hash()}|{world_fp}|v{LADDER_VERSION}".encode()).hexdigest()[:24]
