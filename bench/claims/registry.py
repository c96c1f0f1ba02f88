"""The one registry: claim ID -> Claim, filled by the family modules (`register`) and their tracks (`track`)."""

from __future__ import annotations

from dataclasses import replace

from .model import Claim, Track

CLAIMS: dict[str, Claim] = {}


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
