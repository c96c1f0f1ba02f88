"""The one registry: claim ID -> Claim, filled by the family modules (`register`) and their tracks (`track`)."""

from __future__ import annotations

from dataclasses import replace

from .model import Claim, Track

CLAIMS: dict[str, Claim] = {}
TRACK_INFO: dict[str, tuple[str, str]] = {}   # track name -> (its column label, one sentence on what it runs)


def register(claim: Claim) -> Claim:
    if claim.id in CLAIMS:
        raise ValueError(f"duplicate claim {claim.id}")
    CLAIMS[claim.id] = claim
    return claim


def track(claim_id: str, name: str, checks: tuple, preconditions: tuple = (), scales: tuple = ("real",)) -> None:
    """Add a track to a registered claim: the same claim decided on the rows of group `name` (Claim.tracks)."""
    claim = CLAIMS.get(claim_id)
    if claim is None or name in claim.tracks:
        raise ValueError(f"{name} track for unknown or repeated claim {claim_id}")
    CLAIMS[claim_id] = replace(claim, tracks={**claim.tracks, name: Track(tuple(checks), tuple(preconditions),
                                                                          tuple(scales))})


def describe_track(name: str, label: str, about: str) -> None:
    """A track's column label in the README tables and one sentence on the model and data it runs (the writers
    make one column per track from these, in TRACKS order)."""
    TRACK_INFO[name] = (label, about)
