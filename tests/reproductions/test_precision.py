"""reproductions/precision.py end to end on the smoke profile, and its parts."""

import pytest
import torch

from bench.profiles import PROFILES
from bench.report import NOT_REPRODUCED, REPRODUCED, evaluate_check, group_verdicts
from bench.claims import CLAIMS
from bench.repro import RunContext
from bench.schema import Recorder, read_results
from bench.numerics.toy import ToyLMConfig, tiny_gpt2
from reproductions import precision


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("BENCH_NO_PROGRESS", "1")


def test_smoke_run_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_THREADS", "1")
    ctx = RunContext(profile=PROFILES["smoke"], seeds=(0,), out_dir=tmp_path)
    rec = precision.run(ctx)
    rec.save(extra_meta={"seeds": [0]})
    precision.report(tmp_path)
    df = read_results(tmp_path)
    assert set(df["claim"]) == {"M1", "M2", "M3"} and set(df["scale"]) == {"exact", "toy"}
    timing = read_results(tmp_path, timing=True)
    assert set(timing["metric"]) == {"m3_step_time_s", "m3_step_time_ratio_over_fp32"}
    assert set(df[df["metric"] == "m3_final_loss"]["method"]) == set(precision.PRECISIONS)
    verdicts = {v.claim.id: v.status for v in group_verdicts("precision", tmp_path)}
    assert verdicts["M1"] == REPRODUCED
    assert verdicts["M2"] == NOT_REPRODUCED   # issue 13: two-sided -- the blog's 72 GPUs vs 36 computed
    # every M3 check found its rows (the verdict itself is a toy result, not asserted)
    assert all(evaluate_check(df, "M3", c).n_rows > 0 for c in CLAIMS["M3"].checks if c.missing != "paper")
    text = (tmp_path / "report.md").read_text()
    assert "## M1" in text and "## M3" in text and "65,504" in text
    assert (tmp_path / "formats.png").stat().st_size > 0 and (tmp_path / "m3_loss.png").stat().st_size > 0


def test_run_m3_accepts_a_model_factory(tmp_path):
    cfg = precision.M3Config(ToyLMConfig(vocab=128, seq_len=16, d_model=16, n_layer=1, n_head=2), steps=3,
                             batch_size=2, eval_batches=1, measure_every=1)
    made = []

    def factory(seed):
        made.append(seed)
        return tiny_gpt2(ToyLMConfig(vocab=128, seq_len=16, d_model=24, n_layer=1, n_head=2), seed=seed)

    rec = Recorder(group="precision", profile="smoke", out_dir=tmp_path)
    out = precision.run_m3(rec, cfg, seeds=(0, 1), model_factory=factory, model_name="rung-x")
    assert made == [0] * 4 + [1] * 4
    df = rec.frame()
    assert set(df["model"]) == {"rung-x"} and len(out) == 8
    flush = df[df["metric"] == "m3_grad_flush_share"]
    assert len(flush) == 4 and (flush["value"] >= 0).all() and (flush["value"] <= 1).all()
    saved = df[df["metric"] == "m3_saved_bytes_ratio_over_fp32"]
    assert (saved["value"] < 1).all()          # autocast keeps 16-bit copies for backward


def test_saved_bytes_counts_activations_not_parameters():
    lin = torch.nn.Linear(64, 64, bias=False)
    x = torch.randn(8, 64, requires_grad=True)
    _, n = precision._saved_bytes(lambda: (lin(x) ** 2).sum(), list(lin.parameters()))
    assert n == 8 * 64 * 4 * 2                 # x (kept for the weight grad) and lin(x) (kept by pow); not W
