"""reproductions/decoder: a tiny end-to-end run (a 2-layer random Llama GGUF given as --model) through run() and
report(), the rows' provenance, and the one-line errors of the CLI."""

from __future__ import annotations

import json

import pytest

import reproductions.decoder as R
from bench import decoder
from bench.cli import main
from bench.profiles import get_profile
from bench.repro import RunContext
from tests.reproductions.decoder.tiny import needs_smollm2, session_gguf

pytestmark = needs_smollm2

# tasks off: the tiny GGUF's 2,048-token vocabulary has no single-token label words (test_tasks.py runs the task
# comparison on the real weights cut to 2 layers)
TINY = {"chunks": 3, "chunk_tokens": 12, "batch": 2, "thresholds": [2.0, 6.0], "top_dims": 4, "parity_chunks": 1,
        "tasks": False}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    gguf = session_gguf(tmp_path_factory)
    out = tmp_path_factory.mktemp("decoder")
    ctx = RunContext(profile=get_profile("smoke"), seeds=(0,), out_dir=out, model=str(gguf),
                     options={"settings": TINY})
    rec = R.run(ctx)
    rec.save()
    R.report(out)
    return out, rec, gguf


@pytest.mark.integration
def test_tiny_run_writes_rows_tables_and_plots(tiny_run):
    out, rec, gguf = tiny_run
    df = rec.frame()
    _, man = decoder.ensure_checkpoint(str(gguf))
    assert set(df["model"]) == {"tiny-llama"} and set(df["model_sha256"]) == {man["files"]["model.safetensors"]}
    assert set(df["scale"]) == {"real"}
    assert all(json.loads(i)["weights"] == "dequantized from a 4-bit GGUF" for i in df["info"])
    variants = {json.loads(p)["quant"] for p in df[df["metric"] == "kl_per_token"]["params"]}
    assert variants == {"absmax", "zeropoint", "vectorwise", "llm_int8", "bnb_llm_int8", "keep_absmax",
                        "keep_vectorwise"}
    for claim, metric in [("Q2", "q2_kl_absmax_minus_zeropoint"), ("Q4", "q4_bnb_rel_err_ratio_ours_over_bnb"),
                          ("Q4", "q4_kl_ours_minus_bnb"), ("Q4", "fp_column_share"), ("Q5", "q5_n_outlier_dims"),
                          ("Q5", "q5_max_abs"), ("-", "ppl")]:
        assert ((df["claim"] == claim) & (df["metric"] == metric)).any(), (claim, metric)
    kl = df[df["metric"] == "kl_per_token"]
    for v, info in zip(kl["value"], kl["info"]):
        lo, hi = json.loads(info)["ci95"]
        assert lo <= v <= hi and v >= 0
    assert rec.notes["n_linears_quantized"] == 14 and rec.notes["gguf_sha256"] == man["gguf_sha256"]
    text = (out / "report.md").read_text()
    assert "dequantized from a 4-bit GGUF" in text and "quality.png" in text and "census.png" in text
    for name in ("int8.csv", "chunks.csv", "census.csv", "census_dims.csv", "parity.csv", "quality.png",
                 "census.png", "sweep.png"):
        assert (out / name).stat().st_size > 0, name


@pytest.mark.integration
def test_our_llm_int8_matches_bitsandbytes_layer_by_layer(tiny_run):
    import pandas as pd
    p = pd.read_csv(tiny_run[0] / "parity.csv")
    assert len(p) == 14 and (p["rel_err_ours"] < 0.05).all()
    assert ((p["rel_err_ours"] / p["rel_err_bnb"]).between(0.5, 1.5)).all()


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["repro", "decoder", "--profile", "smoke", "--model", str(tmp_path / "none.gguf"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "GGUF file" in capsys.readouterr().err
    (tmp_path / "m.gguf").write_bytes(b"x")
    assert main(["repro", "lora", "--profile", "smoke", "--model", str(tmp_path / "m.gguf"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "takes no GGUF file" in capsys.readouterr().err
    assert main(["repro", "decoder", "--profile", "smoke", "--set", "chunks=1", "--out", str(tmp_path / "o")]) == 2
    assert "chunks >= 2" in capsys.readouterr().err
