"""reproductions/rslora/sweep.py: the plan's order, jobs independent of the order they run in, one tiny
end-to-end run with its report, and bad settings refused before any training."""

from __future__ import annotations

import pandas as pd
import pytest

from bench import BenchError, jobs
from bench.claims import get
from bench.report import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, verdict
from bench.schema import param, read_results
from reproductions.rslora import sweep
from reproductions.rslora.measure import expected_scaling
from reproductions.rslora.report import report
from reproductions.rslora.settings import Settings
from tests.reproductions.rslora.tiny import micro_ctx


@pytest.fixture(scope="module")
def micro_run(micro_folder, tmp_path_factory):
    """The tiny sweep, saved and reported: its folder."""
    out = tmp_path_factory.mktemp("runs") / "rslora"
    sweep.run(micro_ctx(micro_folder, out)).save()
    report(out)
    return out


def test_plan_is_lr_major_then_rank_seed_scaling():
    s = Settings(rung="-", lrs=(2e-3, 8e-3))
    got = sweep.plan(s, (4, 16), (0, 1))
    assert [(j.lr, j.r, j.seed, j.method) for j in got] == [
        (lr, r, seed, m) for lr in s.lrs for r in (4, 16) for seed in (0, 1) for m in ("lora", "rslora")]
    assert got[:2] == [sweep.Job(2e-3, 4, 0, "lora"), sweep.Job(2e-3, 4, 0, "rslora")]
    assert {j.role for j in got[:8]} == {"main"} and {j.role for j in got[8:]} == {"second"}   # explicit, by lr
    assert {j.split for j in got} == {"test"}


class _Reversed(jobs.JobRunner):
    """Runs the jobs last first (as workers may finish them), returns the results in plan order."""

    def map(self, fn, items, progress=None, desc=""):
        return [fn(job) for job in reversed(list(items))][::-1]


def test_rows_keep_the_plan_order_whatever_order_the_jobs_run(micro_folder, micro_run, tmp_path, monkeypatch):
    """What makes the worker count irrelevant: jobs carry no state between them, so running them in another
    order gives byte-identical results.csv and curves.csv (timings.csv holds the wall times)."""
    monkeypatch.setattr(jobs, "JobRunner", _Reversed)
    out = tmp_path / "rslora"
    sweep.run(micro_ctx(micro_folder, out)).save()
    for f in ("results.csv", "curves.csv"):
        assert (out / f).read_bytes() == (micro_run / f).read_bytes(), f


def test_run_and_report_end_to_end(micro_run):
    out = micro_run
    df = read_results(out)
    runs = df[(df["metric"] == "final_heldout_loss") & param(df, "lr_role").isin(["main", "second"])]
    assert sorted(set(param(runs, "r"))) == [2, 8]                        # 32 > d = 16: capped
    assert len(runs) == 2 * 2 * 2 * 2 and runs["value"].notna().all()     # lrs x ranks x seeds x methods
    sc = df[df["metric"] == "scaling_applied"]
    for _, row in sc.iterrows():
        r = param(sc.loc[[row.name]], "r").iloc[0]
        assert row["value"] == pytest.approx(expected_scaling(row["method"], 16.0, r), rel=1e-9)  # CSV: 10 digits
    derived = df[df["method"] == "-"]
    assert {"rslora_minus_lora_final_loss_top_rank", "lora_update_step_slope_vs_log_rank"} <= set(derived["metric"])
    assert set(param(derived[derived["metric"] != "base_heldout_loss"], "lr_role")) == {"main", "second", "cross"}
    tuned = df[(df["metric"] == "final_heldout_loss") & (param(df, "lr_role") == "tuned")]
    assert len(tuned) == 2 * 2 * 2 and param(tuned, "lr").isna().all()   # ranks x seeds x methods; lr in info
    assert tuned["info"].str.contains('"lr":').all()
    assert len(df[df["metric"] == "lr_search_pick_interior"]) == 4                 # 2 scalings x 2 ranks
    assert len(df[df["metric"] == "lr_search_val_loss"]) >= 4 * 3                  # at least the grid each
    curves = pd.read_csv(out / "curves.csv")
    assert len(curves) == 1 + 16 * 4 and curves["grad_B"].dropna().gt(0).all()   # main/second runs only
    for f in ("report.md", "loss_curves.png", "final_loss_vs_rank.png", "gradnorm_vs_rank.png",
              "gradnorm_curves.png", "scaling_vs_rank.png", "tuned_loss_vs_rank.png"):
        assert (out / f).stat().st_size > 0, f
    text = (out / "report.md").read_text()
    assert "claim L7" in text and "| L7 |" in text and "lr = 0.002 (main lr: decides the slope and gradient checks)" in text
    assert "1 torch threads in each of 1 workers" in text and "## Learning rates tuned per rank" in text
    v = verdict(get("L7"), df)
    # every check and the precondition are fed (the tuned arm included); the outcome on a random micro model
    # is whatever it is
    assert v.status in (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)
    assert all(r.n_rows > 0 for r in v.checks + v.preconditions)


def test_bad_settings_fail_before_training(micro_folder, tmp_path):
    with pytest.raises(BenchError, match="unknown setting"):
        sweep.run(micro_ctx(micro_folder, tmp_path, rank=(4,)))
    with pytest.raises(BenchError, match="at least two ranks"):
        sweep.run(micro_ctx(micro_folder, tmp_path, ranks=(64, 128)))
    with pytest.raises(BenchError, match="lrs > 0"):
        sweep.run(micro_ctx(micro_folder, tmp_path, lrs=()))
    with pytest.raises(BenchError, match=r"--set search_factor: got 1.0; accepts a finite number > 1"):
        sweep.run(micro_ctx(micro_folder, tmp_path, search_factor=1.0))
    assert not (tmp_path / "curves.csv").exists()
