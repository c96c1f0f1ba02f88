"""Full FT's learning rate for the knowledge task, searched on validation people (L4's precondition).

Seed 0 (the run's first seed) trains at every point of `full_lr_grid`; each point is scored by accuracy on the
task's validation people (never the test people); bench.lrsearch extends the grid by `lr_search_factor` while
the best point sits on an edge, at most `lr_search_extensions` times. Every point is a row; the pick goes to the
rows' info (a measured value: rows are keyed on settings only).
"""

from __future__ import annotations

from bench.lrsearch import extend, pick
from bench.schema import Recorder

from reproductions.lora.jobs import Job, do_job
from reproductions.lora.knowledge import knowledge_data


def search_full_lr(runner, rec: Recorder, env: dict, seed: int, progress=None) -> float:
    """Run the search through `runner` (a bench.jobs.JobRunner over reproductions.lora.jobs); record every
    point (l4_full_lr_search_val_accuracy) and whether the pick is interior (l4_full_lr_tuned, 1/0).
    Returns the picked lr."""
    s, name = env["s"], env["name"]
    kw = {"model": name, "data": knowledge_data(s), "method": "full", "seed": seed, "scale": "toy"}
    points: dict[float, float] = {}
    new = list(s.full_lr_grid)
    for _ in range(1 + s.lr_search_extensions):
        jobs = [Job("search", "full", 0, seed, lr) for lr in new]
        for job, res in zip(jobs, runner.map(do_job, jobs, progress=progress, desc="lora: full FT lr search")):
            points[job.lr] = res["acc"]
            rec.add("L4", "l4_full_lr_search_val_accuracy", res["acc"], unit="accuracy",
                    params={"lr": job.lr, "lr_role": "search", "steps": res["steps"]},
                    info={"n_validation": len(env["task"]["validation"]), "final_train_loss": res["final_loss"]},
                    **kw)
        new = extend(points, s.lr_search_factor, higher_is_better=True)
        if not new:
            break
    best, interior = pick(points, higher_is_better=True)
    rec.add("L4", "l4_full_lr_tuned", float(interior), unit="bool", params={"lr_role": "search"},
            info={"lr": best, "grid": sorted(points), "criterion": "validation accuracy, seed 0"}, **kw)
    return best
