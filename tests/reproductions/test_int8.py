"""reproductions/int8.py end to end on the smoke profile, and ppl_table on a tiny random model."""

import copy

import pytest
import torch

from bench.claims import CLAIMS
from bench.numerics.int8_linear import METHODS
from bench.numerics.toy import MarkovData, ToyLMConfig, markov_batches, tiny_gpt2
from bench.profiles import PROFILES
from bench.report import REPRODUCED, evaluate_check, group_verdicts
from bench.repro import RunContext
from bench.schema import read_results
from reproductions import int8


def test_smoke_run_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_NO_PROGRESS", "1")
    monkeypatch.setenv("BENCH_THREADS", "1")
    ctx = RunContext(profile=PROFILES["smoke"], seeds=(0,), out_dir=tmp_path)
    rec = int8.run(ctx)
    rec.save(extra_meta={"seeds": [0]})
    int8.report(tmp_path)
    df = read_results(tmp_path)
    assert set(df["claim"]) == set(int8.CLAIMS)
    verdicts = {v.claim.id: v.status for v in group_verdicts("int8", tmp_path)}
    for cid in ("Q1", "Q3", "Q6"):
        assert verdicts[cid] == REPRODUCED, cid
    # Q4's exact checks (parity with bitsandbytes) pass; its toy checks found their rows
    q4 = CLAIMS["Q4"].checks
    assert all(evaluate_check(df, "Q4", c).passed for c in q4 if c.metric.startswith("bnb_"))
    assert all(evaluate_check(df, cid, c).n_rows > 0 for cid in int8.CLAIMS for c in CLAIMS[cid].checks)
    lat = read_results(tmp_path, timing=True)
    assert set(lat[lat["metric"] == "latency_s"]["method"]) == {"fp32_linear", "llm_int8", "bnb_llm_int8"}
    text = (tmp_path / "report.md").read_text()
    assert "bitsandbytes" in text and "## Q5" in text and "## Q6" in text
    assert (tmp_path / "int8_ppl.png").stat().st_size > 0


def test_ppl_table_on_a_tiny_random_model():
    model = tiny_gpt2(ToyLMConfig(vocab=64, seq_len=16, d_model=32, n_layer=1, n_head=2), seed=0)
    batches = markov_batches(MarkovData(vocab=64), 2, 4, 16, seed=0)
    before = copy.deepcopy(model.state_dict())
    rows = int8.ppl_table([("tiny", model, batches)])
    assert [r["method"] for r in rows] == ["fp32", *METHODS]
    assert rows[0]["ratio_over_fp32"] == 1.0
    assert all(r["ppl"] > 1 and abs(r["ratio_over_fp32"] - 1) < 0.05 for r in rows)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())   # the model is not modified


@pytest.mark.skip(reason="--model (ladder rung / checkpoint path) is wired by the lead")
def test_model_argument():
    pass
