"""reproductions/rslora/runs.py and the sweep's search/tuned wiring, on fake training (no model is trained):
the rows a job becomes by role, tuned rows with their lr in info only, and tuned runs reused from the main ones."""

from __future__ import annotations

import json
import math

import pytest

from bench import jobs
from bench.schema import param
from bench.train import TrainResult
from reproductions.rslora import runs, sweep
from reproductions.rslora.measure import expected_scaling
from reproductions.rslora.runs import Job, run_params
from reproductions.rslora.settings import Settings
from tests.reproductions.rslora.tiny import micro_ctx


def test_run_params_keep_a_picked_lr_out_of_the_identity():
    s = Settings(rung="-")
    p, info = run_params(Job(8e-3, 16, 0, "lora", "tuned"), s)
    assert "lr" not in p and p["lr_role"] == "tuned" and info == {"lr": 8e-3}
    for role in ("main", "second", "search"):
        p, info = run_params(Job(8e-3, 16, 0, "lora", role), s)
        assert p["lr"] == 8e-3 and p["lr_role"] == role and info == {}


def fake_train_one(base, train_rows, held, method, r, seed, lr, s, threads=None):
    """Final loss 1 + log4(lr / opt)^2 (+0.01 per seed, +0.1 on the test people), opt = 8e-3 for rsLoRA and
    8e-3 * r / 2 for LoRA (alpha/r: a larger rank wants a larger lr); one curve row."""
    opt = 8e-3 * (r / 2 if method == "lora" else 1)
    loss = 1 + math.log(lr / opt, 4) ** 2 + 0.01 * seed + (0.0 if held is jobs.ENV["val_batches"] else 0.1)
    curve = {"method": method, "r": r, "seed": seed, "lr": lr, "step": 1, "lr_now": lr, "train_loss": loss,
             "heldout_loss": loss, "grad_A": 1.0, "grad_B": 1.0, "update_grad": 1.0, "update_step": 1.0}
    sc = expected_scaling(method, s.alpha, r)
    return {"result": TrainResult(steps_done=s.steps, final={"heldout_loss": loss, "final_loss": loss}, wall_s=1.0),
            "curves": [curve], "scalings": [sc], "expected_scaling": sc, "trainable_params": 10 * r}


@pytest.fixture(scope="module")
def fake_run(micro_folder, tmp_path_factory):
    """sweep.run with fake training: (recorder, results frame, timings frame)."""
    mp = pytest.MonkeyPatch()
    mp.setattr(runs, "train_one", fake_train_one)
    try:
        rec = sweep.run(micro_ctx(micro_folder, tmp_path_factory.mktemp("fake") / "rslora"))
    finally:
        mp.undo()
    return rec, rec.frame(), rec.frame(timing=True)


def test_search_picks_per_rank_on_validation_and_tuned_runs_reuse_main_runs(fake_run):
    rec, df, timings = fake_run
    # ranks 2, 8: LoRA r=8 wants 3.2e-2 (grid edge, one extension to 0.128 makes it interior); the rest 8e-3
    assert rec.notes["lr_picks"] == {"lora r=2": 8e-3, "rslora r=2": 8e-3, "lora r=8": 3.2e-2, "rslora r=8": 8e-3}
    assert rec.notes["tuned_runs_reused"] == 6                    # 8e-3 is lrs[1]: those "second" runs stand in
    pts = df[df["metric"] == "lr_search_val_loss"]
    assert len(pts) == 13 and (pts["seed"] == 0).all() and pts["value"].min() == pytest.approx(1.0)  # validation
    assert df[df["metric"] == "lora_lr_tuned_per_rank"]["value"].tolist() == [1.0]
    tuned = df[(df["metric"] == "final_heldout_loss") & (param(df, "lr_role") == "tuned")]
    assert len(tuned) == 8 and param(tuned, "lr").isna().all()
    lrs = tuned["info"].map(lambda s: json.loads(s)["lr"])
    assert sorted(set(lrs)) == [8e-3, 3.2e-2]
    second = df[(df["metric"] == "final_heldout_loss") & (param(df, "lr_role") == "second")]
    key = lambda d: list(zip(d["method"], param(d, "r"), d["seed"]))  # noqa: E731
    reused = dict(zip(key(second), second["value"]))
    for (m, r, seed), v, lr in zip(key(tuned), tuned["value"], lrs):
        assert v == (reused[(m, r, seed)] if lr == 8e-3 else pytest.approx(1.1 + 0.01 * seed))   # test people
    tuned_timing = timings[param(timings, "lr_role") == "tuned"]
    assert len(tuned_timing) == 2 * 2                             # only LoRA r=8's two seeds trained: 2 rows each


def test_search_and_tuned_runs_stay_out_of_derived_rows(fake_run):
    _, df, _ = fake_run
    derived = df[(df["method"] == "-") & (df["metric"] != "base_heldout_loss")]
    assert set(param(derived, "lr_role")) == {"main", "second", "cross"}
    assert set(param(derived, "lr").dropna()) == {2e-3, 8e-3}
