"""reproductions/rslora/tune.py: the per-rank lr search on a fake scorer (rounds, extension, interior flag,
divergence), its rows keyed without measured lrs, and the tuned plan."""

from __future__ import annotations

import math

import pytest

from bench.schema import KEY, Recorder
from reproductions.rslora.settings import Settings
from reproductions.rslora.tune import picks, record_search, search, search_jobs, tuned_plan

S = Settings(rung="-", search_lrs=(2e-3, 8e-3, 3.2e-2), search_factor=4.0, search_extensions=3)


def bowl(opt: float, diverge_above: float = math.inf):
    """A fake final validation loss: (log4(lr / opt))^2, nan (diverged) above `diverge_above`."""
    return lambda lr: math.nan if lr > diverge_above else math.log(lr / opt, 4) ** 2


class FakeScorer:
    """Scores (target, lr) points by one function per target; keeps each round's batch of points."""

    def __init__(self, fns):
        self.fns, self.rounds = fns, []

    def __call__(self, todo):
        self.rounds.append(list(todo))
        return [self.fns[t](lr) for t, lr in todo]


def test_grid_extends_past_the_winning_edge_until_interior():
    score = FakeScorer({("lora", 4): bowl(0.1), ("rslora", 4): bowl(8e-3), ("lora", 64): bowl(1e-6)})
    pts = search(score, list(score.fns), S)
    assert sorted(pts[("rslora", 4)]) == [2e-3, 8e-3, 3.2e-2]                 # interior at once: no extension
    assert sorted(pts[("lora", 4)]) == pytest.approx([2e-3, 8e-3, 3.2e-2, 0.128, 0.512])
    assert sorted(pts[("lora", 64)]) == pytest.approx([2e-3 / 4 ** 3, 2e-3 / 16, 5e-4, 2e-3, 8e-3, 3.2e-2])
    got = picks(pts)
    assert got[("lora", 4)] == (pytest.approx(0.128), True) and got[("rslora", 4)] == (8e-3, True)
    assert got[("lora", 64)] == (pytest.approx(2e-3 / 64), False)               # 3 extensions spent, still edge
    # every round's new points of all targets go to the scorer together (one runner.map per round)
    assert [len(r) for r in score.rounds] == [9, 2, 2, 1]


def test_no_extensions_and_a_diverged_point_is_the_worst():
    score = FakeScorer({("lora", 8): bowl(1.0, diverge_above=1e-2), ("rslora", 8): bowl(1.0, diverge_above=1e-3)})
    pts = search(score, list(score.fns), Settings(rung="-", search_extensions=0))
    assert len(score.rounds) == 1
    assert picks(pts)[("lora", 8)] == (8e-3, True)            # 3.2e-2 diverged: the best finite point is inside
    assert picks(pts)[("rslora", 8)] == (2e-3, False)         # all diverged: the smallest lr, at the edge


def test_search_jobs_score_seed_on_validation_and_tuned_plan_runs_every_seed():
    jobs = search_jobs([(("lora", 4), 8e-3), (("rslora", 16), 2e-3)], seed=5)
    assert [(j.lr, j.r, j.seed, j.method, j.role, j.split) for j in jobs] == [
        (8e-3, 4, 5, "lora", "search", "validation"), (2e-3, 16, 5, "rslora", "search", "validation")]
    chosen = {("lora", 4): (8e-3, True), ("rslora", 4): (3.2e-2, False)}
    plan = tuned_plan(chosen, (4,), (0, 1))
    assert [(j.method, j.seed, j.lr, j.role, j.split) for j in plan] == [
        ("lora", 0, 8e-3, "tuned", "test"), ("rslora", 0, 3.2e-2, "tuned", "test"),
        ("lora", 1, 8e-3, "tuned", "test"), ("rslora", 1, 3.2e-2, "tuned", "test")]


def _rows(opt_lora_64: float):
    fns = {("lora", 4): bowl(8e-3), ("rslora", 4): bowl(8e-3), ("lora", 64): bowl(opt_lora_64),
           ("rslora", 64): bowl(1.0)}
    rec = Recorder(group="rslora", profile="smoke", out_dir=None, claims=["L7"])
    record_search(rec, search(FakeScorer(fns), list(fns), S), S, 0, "m", "d")
    return rec.frame()


def test_search_rows_keep_picks_in_info_and_decide_the_precondition():
    df = _rows(opt_lora_64=3e-2)
    flag = df[df["metric"] == "lora_lr_tuned_per_rank"]
    assert len(flag) == 1 and flag["value"].iloc[0] == 1.0            # rsLoRA r=64 at the edge does not matter
    assert flag["method"].iloc[0] == "lora" and flag["params"].iloc[0] == '{"lr_role":"search"}'
    assert '"64":0.032' in flag["info"].iloc[0]
    pick = df[df["metric"] == "lr_search_pick_interior"]
    assert len(pick) == 4 and not pick["params"].str.contains('"lr"').any()
    assert pick["info"].str.contains('"lr":').all() and pick["info"].str.contains('"grid":').all()
    pts = df[df["metric"] == "lr_search_val_loss"]
    assert pts["params"].str.contains('"lr_role":"search"').all() and (pts["seed"] == 0).all()
    assert (pts["unit"] == "nats/token").all()
    edge = _rows(opt_lora_64=1e-5)                                     # LoRA r=64 still at the low edge
    assert edge[edge["metric"] == "lora_lr_tuned_per_rank"]["value"].tolist() == [0.0]


def _keys(df, metric: str) -> list[tuple]:
    """The regression gate's identities (bench.schema.KEY) of one metric's rows."""
    return sorted(map(tuple, df[df["metric"] == metric][KEY].astype(str).values))


def test_pick_rows_have_the_same_identity_whatever_lr_is_picked():
    """Another CPU kind may pick another lr: the pick rows and the precondition row keep their keys (the gate
    then reports a moved value, never a missing row)."""
    a, b = _rows(opt_lora_64=3e-2), _rows(opt_lora_64=9e-3)
    for metric in ("lr_search_pick_interior", "lora_lr_tuned_per_rank"):
        assert _keys(a, metric) == _keys(b, metric)
    info = [d[d["metric"] == "lr_search_pick_interior"]["info"].tolist() for d in (a, b)]
    assert info[0] != info[1]                                                    # LoRA r=64: 3.2e-2 vs 8e-3
