"""reproductions/int8 end to end on the smoke ladder, and --model with a saved OPT checkpoint."""

import pytest
import torch

from bench import BenchError
from bench.claims import CLAIMS
from bench.numerics.int8_linear import METHODS
from bench.profiles import PROFILES
from bench.report import REPRODUCED, evaluate_check, group_verdicts
from bench.repro import RunContext
from bench.schema import param, read_results
from reproductions import int8


@pytest.mark.integration
def test_smoke_run_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_NO_PROGRESS", "1")
    monkeypatch.setenv("BENCH_THREADS", "1")
    ctx = RunContext(profile=PROFILES["smoke"], seeds=(0,), out_dir=tmp_path)
    rec = int8.run(ctx)
    rec.save(extra_meta={"seeds": [0]})
    int8.report(tmp_path)
    df = read_results(tmp_path)
    assert set(df["claim"]) == set(int8.CLAIMS)
    toy = df[(df["scale"] == "toy") & ~df["metric"].str.startswith("natural_")]
    assert set(toy["model"]) == {"smoke-a", "smoke-b"}          # the smoke ladder's rungs, not Markov toys
    assert set(toy["data"]) == {"world-smoke-seed0-heldout", "world-smoke-seed0-knowledge-qa-test"}   # issue 15: answers
    nat = df[df["metric"].str.startswith("natural_")]           # issue 15: the BOS series, its own models and data
    assert set(nat["model"]) == {"smoke-a+bos", "smoke-b+bos", "ladder-smoke+bos"}
    assert set(nat["data"]) == {"world-smoke-seed0-heldout-bos"} and set(nat["claim"]) == {"Q5"}
    fp32 = toy[toy["metric"] == "fp32_ppl"]
    assert len(fp32) == 4 and fp32["value"].between(1.0, 50.0).all()   # 2 rungs x (plain, planted), pretrained
    verdicts = {v.claim.id: v.status for v in group_verdicts("int8", tmp_path)}
    for cid in ("Q1", "Q3", "Q6"):
        assert verdicts[cid] == REPRODUCED, cid
    # Q4's exact checks (parity with bitsandbytes) pass; its toy checks found their rows
    q4 = CLAIMS["Q4"].checks
    assert all(evaluate_check(df, "Q4", c).passed for c in q4 if c.metric.startswith("bnb_"))
    assert all(evaluate_check(df, cid, c).n_rows > 0 for cid in int8.CLAIMS for c in CLAIMS[cid].checks
               if c.missing != "paper")   # issue 13: paper-scale parts have no toy rows
    lat = read_results(tmp_path, timing=True)
    assert set(lat[lat["metric"] == "latency_s"]["method"]) == {"fp32_linear", "llm_int8", "bnb_llm_int8"}
    text = (tmp_path / "report.md").read_text()
    assert "bitsandbytes" in text and "## Q5" in text and "## Q6" in text
    assert (tmp_path / "int8_ppl.png").stat().st_size > 0
    # issue 15's rows (Q4 decides on all_ln): per rung and planted variant, in the report with the kurtosis figure
    kl = toy[toy["metric"] == "deg_kl_per_token"]
    assert len(kl) == 2 * 3 * 4 and set(param(kl, "planted")) == {"none", "ln_2", "all_ln"}   # rungs x variants x methods
    assert len(toy[toy["metric"] == "deg_answer_accuracy"]) == 2 * 3 * 5                     # fp32 too
    assert "Q4: int8 degradation" in text and "LayerNorm outputs that feed a Linear" in text
    assert (tmp_path / "lncensus_kurtosis.png").stat().st_size > 0
    assert "natural outliers along pretraining" in text and (tmp_path / "natural_outliers.png").stat().st_size > 0


def _tiny_opt(folder):
    """A tiny random OPT causal LM saved with the smoke ladder's tokenizer (vocab sized to it)."""
    from transformers import OPTConfig, OPTForCausalLM
    from bench.ladder import load_rung
    _, tok = load_rung("smoke-a", progress=False)
    cfg = OPTConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, ffn_dim=64, num_attention_heads=2,
                    max_position_embeddings=64, word_embed_proj_dim=32, dropout=0.0, attention_dropout=0.0,
                    pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    OPTForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_model_argument_replaces_the_ladder(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_NO_PROGRESS", "1")
    monkeypatch.setenv("BENCH_THREADS", "1")
    folder = _tiny_opt(tmp_path / "tiny-opt")
    out = tmp_path / "out"
    ctx = RunContext(profile=PROFILES["smoke"], seeds=(0,), out_dir=out, model=f"{folder}, smoke-a")
    rec = int8.run(ctx)
    rec.save(extra_meta={"seeds": [0]})
    int8.report(out)
    df = read_results(out)
    rows = df[df["model"] == "tiny-opt"]
    assert set(rows["scale"]) == {"paper"}
    assert set(df[df["scale"] == "toy"]["model"]) == {"smoke-a"}                  # --model replaced smoke-b
    t = rows[rows["metric"] == "int8_ppl_ratio_over_fp32"]
    assert set(t["method"]) == set(METHODS) and (param(t, "planted") == False).all()   # OPT: no planting
    assert (t["value"] - 1).abs().max() < 0.05                          # a random model: int8 barely moves ppl
    assert (rows[rows["metric"] == "int8_storage_minus_accounting_bytes"]["value"] == 0).all()
    assert "tiny-opt" in (out / "report.md").read_text()


def test_bad_model_argument_fails_before_running(tmp_path):
    ctx = RunContext(profile=PROFILES["smoke"], seeds=(0,), out_dir=tmp_path, model="smoke-a,,")
    with pytest.raises(BenchError, match="empty entry"):
        int8.run(ctx)
    ctx = RunContext(profile=PROFILES["smoke"], seeds=(0,), out_dir=tmp_path, model=str(tmp_path / "missing"))
    with pytest.raises(BenchError, match="does not exist"):
        int8.run(ctx)
