import math

from bench.lrsearch import extend, pick


def test_pick_reports_interior_and_breaks_ties_low():
    assert pick({1e-3: 0.5, 3e-3: 0.7, 1e-2: 0.6}, higher_is_better=True) == (3e-3, True)
    assert pick({1e-3: 0.5, 3e-3: 0.5}, higher_is_better=True) == (1e-3, False)
    assert pick({1e-3: 1.0, 4e-3: 2.0}, higher_is_better=False) == (1e-3, False)


def test_diverged_points_are_worst():
    assert pick({1e-3: 2.0, 4e-3: math.nan, 1.6e-2: 3.0}, higher_is_better=False) == (1e-3, False)


def test_extend_follows_the_winning_edge_until_interior():
    loss = lambda lr: (math.log10(lr) + 1.5) ** 2          # optimum at 10**-1.5 ~ 0.03  # noqa: E731
    points = {lr: loss(lr) for lr in (1e-4, 4e-4)}
    for _ in range(10):
        new = extend(points, factor=4.0, higher_is_better=False)
        if not new:
            break
        points.update({lr: loss(lr) for lr in new})
    best, interior = pick(points, higher_is_better=False)
    assert interior and 0.01 < best < 0.1


def test_extend_stops_at_bounds_and_on_all_failed():
    assert extend({5.0: 2.0, 2.0: 1.0}, factor=4.0, higher_is_better=True) == []
    assert extend({1e-3: math.nan, 4e-3: math.nan}, factor=4.0, higher_is_better=True) == []
