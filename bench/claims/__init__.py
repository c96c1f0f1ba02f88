"""The claims registry: every claim of the lecture, its published numbers, and the rule that decides it.

Layout (issue 32):
- `model.py`: the types (`Claim`, `Check`, `Effect`, `Track`, `Change`, the row filters `W` / `R`); each Check and
  Effect renders its own sentence, so a rule's prose is generated from its machine form;
- `rules.py`: constants and precondition helpers the families share;
- `prompt.py`, `additive.py`, `lora.py`, `precision.py`, `quantization.py`: the claims, data only, one module per
  family; `beyond.py`: claims beyond the lecture (QLoRA, DoRA, PiSSA, LoRA+; issue 33); `real.py`: their `real`
  track (the same claims on a model somebody else pretrained, `Claim.tracks`); `decoder.py`: their `decoder`
  track (SmolLM2-135M, a real causal LM, weights dequantized from 4-bit);
- `history.toml`: the changelog (every rule as it stood before a change, with date and reason; read with tomllib
  and attached to each claim as `Claim.history`);
- `engine.py`: the verdict engine (`verdict`, `evaluate_check`, `evaluate_effect`, the one-sided stress test);
- `writers.py`: rule prose, report and README cells.

Importing this package loads the registry only (no pandas); the engine and writers are imported where used.
Scale words: exact (arithmetic or deterministic code, pass/fail); toy (a trend on the embedded ladder, seeds and
spread, scale stated); paper (needs the paper's checkpoints and a GPU: "not run (needs paper scale)").
Outcomes (issue 13): reproduced / not reproduced / inconclusive / not run; separable parts get sub-verdicts;
`preconditions` are decided first. `Effect`s decide from per-run rows with a 95% interval (`bench.stats`).
"""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path

from bench import BenchError

# the families in the lecture's order (P, A, L, M, Q), then beyond it (X), then the tracks: keep it  # isort: skip
from . import prompt  # noqa: F401,I001  # isort: skip
from . import additive  # noqa: F401  # isort: skip
from . import lora  # noqa: F401  # isort: skip
from . import precision  # noqa: F401  # isort: skip
from . import quantization  # noqa: F401  # isort: skip
from . import beyond  # noqa: F401  # isort: skip
from . import real  # noqa: F401  # isort: skip
from . import decoder  # noqa: F401  # isort: skip
from .model import OPS, Change, Check, Claim, Effect, R, Track, W
from .real import REAL_GROUP, REAL_ITEMS
from .decoder import DECODER_GROUP
from .registry import CLAIMS, TRACK_INFO, describe_track, register, track
from .rules import (ADAPT_POINTS, ADAPT_SE, DATE, DATE_14, DATE_30, KNOWLEDGE_ITEMS, LOSS_FACTOR, MAIN, NEXTMONTH_ITEMS,
                    ONE_SIDED, ONE_SIDED_SHIFT, P4_ATOL, POWER_TARGET, converged, designed, needs_adaptation)

HISTORY = Path(__file__).with_name("history.toml")


def load_history(path: Path = HISTORY) -> list[dict]:
    """The changelog's entries, in file order (claim, date, old, reason, and run where known)."""
    with open(path, "rb") as f:
        return list(tomllib.load(f).get("change", []))


def _attach_history() -> None:
    by_claim: dict[str, list] = {}
    for e in load_history():
        if e["claim"] not in CLAIMS:
            raise ValueError(f"history.toml: entry for unknown claim {e['claim']!r}")
        if e.get("track", "") not in ("", *CLAIMS[e["claim"]].tracks):
            raise ValueError(f"history.toml: {e['claim']} has no track {e['track']!r}")
        by_claim.setdefault(e["claim"], []).append(Change(e["date"], e["old"], e["reason"], e.get("run", ""),
                                                          e.get("track", "")))
    for cid, changes in by_claim.items():
        CLAIMS[cid] = replace(CLAIMS[cid], history=tuple(changes))


_attach_history()

TRACKS = tuple(dict.fromkeys(t for c in CLAIMS.values() for t in c.tracks))
GROUPS = tuple(dict.fromkeys([c.group for c in CLAIMS.values()] + list(TRACKS)))


def get(claim_id: str) -> Claim:
    key = claim_id.strip().upper()
    if key not in CLAIMS:
        raise BenchError(f"unknown claim {claim_id!r}; known: {', '.join(CLAIMS)}")
    return CLAIMS[key]


def by_group(group: str) -> list[Claim]:
    """The claims group `group` decides, as it decides them (a track's group: each claim on that track)."""
    if group not in GROUPS:
        raise BenchError(f"unknown group {group!r}; known: {', '.join(GROUPS)}")
    return [c for c in CLAIMS.values() if c.group == group] + [c.on(group) for c in CLAIMS.values() if group in c.tracks]


def on_track(track_name: str) -> dict[str, Claim]:
    """{claim ID: the claim as track `track_name` decides it}, in registry order."""
    return {c.id: c.on(track_name) for c in CLAIMS.values() if track_name in c.tracks}
