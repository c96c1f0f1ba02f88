"""Learning-rate search with an interior optimum: extend the grid until the best point is not at its edge.

A pick at the edge of a grid says only that the optimum lies beyond it. `extend(points)` names the next
learning rate to try (one grid factor past the winning edge), or none when the best is interior; the caller
runs the new points (in parallel, through bench.jobs) and asks again, up to a budget of extensions.

    points = {lr: score(lr) for lr in grid}
    for _ in range(max_extensions):
        new = extend(points, factor=4.0, higher_is_better=False)
        if not new:
            break
        points.update({lr: score(lr) for lr in new})
    best, interior = pick(points, higher_is_better=False)

A diverged run scores nan and counts as the worst point.
"""

from __future__ import annotations

import math


def _key(score: float, higher_is_better: bool) -> float:
    if not math.isfinite(score):
        return -math.inf
    return score if higher_is_better else -score


def pick(points: dict[float, float], higher_is_better: bool) -> tuple[float, bool]:
    """(best lr, whether it lies strictly inside the grid). Ties go to the smaller lr.

    Raises ValueError on an empty grid."""
    if not points:
        raise ValueError("pick: no points")
    lrs = sorted(points)
    best = max(lrs, key=lambda lr: (_key(points[lr], higher_is_better), -lr))
    return best, lrs[0] < best < lrs[-1]


def extend(points: dict[float, float], factor: float, higher_is_better: bool, lo: float = 1e-7,
           hi: float = 10.0) -> list[float]:
    """The lr to add when the best point sits at the grid's edge: one `factor` beyond it (within [lo, hi]);
    [] when the best is interior, the edge is at a bound, or every point failed (nothing to follow)."""
    if not points or not any(math.isfinite(v) for v in points.values()):
        return []
    best, interior = pick(points, higher_is_better)
    if interior:
        return []
    lrs = sorted(points)
    if len(lrs) == 1:
        return [x for x in (best / factor, best * factor) if lo <= x <= hi]
    nxt = best * factor if best == lrs[-1] else best / factor
    return [nxt] if lo <= nxt <= hi else []
