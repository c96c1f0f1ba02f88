"""Run profiles. Each reproduction keeps its own per-profile settings next to its code; this module
holds what every harness shares: the profile names, default seeds, and which ladder a profile uses.

- smoke: CI and regression checks; tiny rungs, few steps, minutes on 2 cores.
- cpu:   the default, the full run on a 2-core machine (each group states its wall time).
- gpu:   larger rungs and budgets when CUDA is present.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench import BenchError


@dataclass(frozen=True)
class Profile:
    name: str
    ladder: str          # which ladder's rungs the harnesses use (bench.ladder.LADDERS key)
    seeds: tuple[int, ...]
    help: str


PROFILES = {
    "smoke": Profile("smoke", ladder="smoke", seeds=(0, 1, 2), help="CI / regression: tiny rungs, minutes"),
    "cpu": Profile("cpu", ladder="cpu", seeds=(0, 1, 2), help="default: the full run on a 2-core CPU"),
    "gpu": Profile("gpu", ladder="gpu", seeds=(0, 1, 2), help="larger rungs when CUDA is present"),
}
DEFAULT_PROFILE = "cpu"


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise BenchError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    if name == "gpu":
        import torch
        if not torch.cuda.is_available():
            raise BenchError("profile 'gpu' needs CUDA, and torch sees no GPU here; use --profile cpu")
    return PROFILES[name]


def parse_seeds(text: str | None, profile: Profile) -> tuple[int, ...]:
    """'0,1,2' or '3' (meaning 0..2); None -> the profile's seeds."""
    if text is None:
        return profile.seeds
    try:
        parts = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise BenchError(f"--seeds takes a count (3) or a comma list (0,1,2), got {text!r}") from None
    if not parts or any(p < 0 for p in parts):
        raise BenchError(f"--seeds takes a count (3) or a comma list (0,1,2), got {text!r}")
    if len(parts) == 1 and "," not in text:
        if parts[0] < 1:
            raise BenchError(f"--seeds {text}: a seed count must be at least 1 (for seed 0 alone write --seeds 0,)")
        return tuple(range(parts[0]))
    if len(set(parts)) != len(parts):
        raise BenchError(f"--seeds {text}: repeated seed")
    return tuple(parts)
