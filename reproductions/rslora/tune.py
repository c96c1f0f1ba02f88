"""The per-rank learning-rate search behind L7's "tuned" comparison, and its rows.

Under alpha/r a larger rank is also a smaller effective step, so comparing LoRA and rsLoRA at one shared lr can
say only which scaling suits that lr. Here every (scaling, rank) gets its own lr: seed 0 (the run's first seed)
trains at every point of `search_lrs`, scored by the final validation loss (the task's validation people: neither
trained on nor used for the held-out loss); bench.lrsearch extends the grid by `search_factor` past the winning
edge, at most `search_extensions` rounds. Every seed then trains at the pick and is scored on the test people
(lr_role "tuned"). A pick is measured, so it goes into the rows' info, never their params (their identity).
"""

from __future__ import annotations

from typing import Callable

from bench.lrsearch import extend, pick
from bench.schema import Recorder
from reproductions.rslora.runs import Job, run_params
from reproductions.rslora.settings import METHODS, Settings

Target = tuple[str, int]                                 # (method, r): one search
Points = dict[Target, dict[float, float]]                # lr -> final validation loss (nan: diverged), per target
Scorer = Callable[[list[tuple[Target, float]]], list[float]]


def search(score: Scorer, targets: list[Target], s: Settings) -> Points:
    """Run the grid, then extension rounds, for all targets together: `score` gets one round's new (target, lr)
    points at once (to run them in parallel) and returns their final validation losses in the same order."""
    points: Points = {t: {} for t in targets}
    new = {t: sorted(set(s.search_lrs)) for t in targets}
    for _ in range(1 + s.search_extensions):
        todo = [(t, lr) for t in targets for lr in new[t]]
        if not todo:
            break
        for (t, lr), loss in zip(todo, score(todo), strict=True):
            points[t][lr] = loss
        new = {t: extend(points[t], s.search_factor, higher_is_better=False) for t in targets}
    return points


def picks(points: Points) -> dict[Target, tuple[float, bool]]:
    """(picked lr, strictly inside its grid) per target: the lowest validation loss, nan the worst."""
    return {t: pick(p, higher_is_better=False) for t, p in points.items()}


def search_jobs(todo: list[tuple[Target, float]], seed: int) -> list[Job]:
    """A round's search points as jobs: `seed`, scored on the validation people."""
    return [Job(lr, r, seed, m, "search", "validation") for (m, r), lr in todo]


def tuned_plan(chosen: dict[Target, tuple[float, bool]], ranks, seeds) -> list[Job]:
    """Every seed at its (scaling, rank)'s pick, scored on the test people; rank, seed, scaling order (as plan)."""
    return [Job(chosen[(m, r)][0], r, seed, m, "tuned", "test") for r in ranks for seed in seeds for m in METHODS]


def record_search(rec: Recorder, points: Points, s: Settings, seed: int, name: str, data: str) -> None:
    """The search's rows (claim L7): every point (lr_search_val_loss), each target's pick and whether it is
    interior (lr_search_pick_interior), and L7's precondition lora_lr_tuned_per_rank (1 iff every LoRA rank's
    pick is interior). Targets in the order searched, points by lr."""
    chosen = picks(points)
    ident = dict(model=name, data=data, seed=seed)
    for (m, r), p in points.items():
        for lr in sorted(p):
            params, _ = run_params(Job(lr, r, seed, m, "search", "validation"), s)
            rec.add("L7", "lr_search_val_loss", p[lr], unit="nats/token", method=m, params=params, **ident)
        best, interior = chosen[(m, r)]
        rec.add("L7", "lr_search_pick_interior", float(interior), unit="bool", method=m,
                params={"r": r, "alpha": s.alpha, "lr_role": "search"},
                info={"lr": best, "grid": sorted(p)}, **ident)
    lora = {r: chosen[(m, r)] for m, r in points if m == "lora"}
    rec.add("L7", "lora_lr_tuned_per_rank", float(bool(lora) and all(i for _, i in lora.values())), unit="bool",
            method="lora", params={"lr_role": "search"},
            info={"picks": {str(r): lr for r, (lr, _) in lora.items()},
                  "interior": {str(r): i for r, (_, i) in lora.items()},
                  "criterion": f"final validation loss, seed {seed}"}, **ident)
