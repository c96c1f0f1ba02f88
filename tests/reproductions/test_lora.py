"""reproductions/lora.py: exact L2 counts, the planted teacher, and the smoke profile end to end."""

import json
import logging

import pytest
import torch

from bench import BenchError
from bench.claims import CLAIMS
from bench.profiles import PROFILES
from bench.report import INCONCLUSIVE, NOT_REPRODUCED, NOT_RUN, REPRODUCED, verdict
from bench.repro import RunContext
from bench.schema import Recorder, param, read_results
from reproductions import lora

logging.getLogger("transformers").setLevel(logging.ERROR)


def test_l2_counts_are_exact(tmp_path):
    rec = Recorder(group="lora", profile="smoke", out_dir=tmp_path, claims=["L2"])
    out = lora.l2_counts(rec)
    df = rec.frame()

    def count(model, r, targets):
        rows = df[(df.metric == "lora_trainable_params") & (df.model == model) & (param(df, "r") == r)
                  & (param(df, "targets") == targets)]
        assert len(rows) == 1
        return int(rows.value.iloc[0])

    assert count("gpt3-175b", 1, "q,v") == 4_718_592
    assert count("gpt3-175b", 8, "q,v") == 37_748_736
    assert count("gpt3-175b", 4, "q,k,v,o") == 37_748_736
    assert count("llama-7b", 8, "q,v") == 4_194_304
    assert count("mt0-large", 8, "q,v") == 2_359_296           # peft's README for mt0-large
    assert out["totals"]["llama-7b"] == 6_738_415_616
    assert out["totals"]["mt0-large"] + 2_359_296 == 1_231_940_608  # "all params" in peft's README
    b16 = df[(df.metric == "adapter_bytes_fp16") & (df.model == "llama-7b") & (param(df, "r") == 8)]
    assert b16.value.iloc[0] == 8 * 2**20
    ratio = df[df.metric == "lora_ratio_error_vs_2r_over_d"]
    assert len(ratio) > 40 and ratio.value.max() == 0.0
    lora._META_CACHE.clear()


def test_plant_has_rank_k_and_reaches_the_target_kl():
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    base = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=50, n_positions=16,
                                      bos_token_id=0, eos_token_id=0)).eval()
    rows = [{"input_ids": torch.randint(0, 50, (16,)).tolist()} for _ in range(8)]
    for target in ("c_attn", "c_attn.v"):
        teacher, deltas = lora.plant(base, 3, 2.0, rows, target=target)
        for dw in deltas:
            sv = torch.linalg.svdvals(dw.double())
            assert int((sv > 1e-6 * sv[0]).sum()) == 3
            if target == "c_attn.v":
                assert dw[:, :64].abs().max() == 0      # q and k untouched
        assert not any(p.requires_grad for p in teacher.parameters())
    kl4 = lora._kl(base, lora.plant(base, 3, 4.0, rows)[0], rows)
    scale, kl = lora.calibrate_plant(base, 3, rows, kl4 / 2)
    assert 0 < scale <= 4.0 and kl4 / 2 <= kl <= kl4


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke profile, one seed, on a private ladder cache (pretrains smoke-b: seconds)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("BENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
    mp.setenv("BENCH_NO_PROGRESS", "1")
    out = tmp_path_factory.mktemp("results") / "lora"
    try:
        rec = lora.run(RunContext(profile=PROFILES["smoke"], seeds=(0,), out_dir=out))
        rec.out_dir = out
        rec.save(extra_meta={"seeds": [0]})
        lora.report(out)
    finally:
        mp.undo()
    return out


def test_smoke_writes_results_report_and_plots(smoke):
    for f in ("results.csv", "timings.csv", "meta.json", "report.md", "ratio_vs_d.png", "memory_parts.png",
              "l4_rank.png", "l6_rank.png"):
        assert (smoke / f).stat().st_size > 0, f
    text = (smoke / "report.md").read_text()
    assert "4,718,592" in text and "37,748,736" in text
    meta = json.loads((smoke / "meta.json").read_text())
    assert set(meta["part_wall_s"]) >= {"exact", "memory", "fine_tuning_runs", "latency"}


def test_smoke_verdicts(smoke):
    df = read_results(smoke)
    status = {c: verdict(CLAIMS[c], df).status for c in lora.CLAIMS}
    for c in ("L1", "L2", "L3", "L5"):              # exact or measured-bytes claims: must hold on any rung
        assert status[c] == REPRODUCED, (c, verdict(CLAIMS[c], df).measured)
    # issue 13: A2's memory model needs an independent measurement (not recorded yet): that part is inconclusive
    a2 = verdict(CLAIMS["A2"], df)
    assert a2.parts["accounting"] == a2.parts["measured"] == REPRODUCED and a2.status == INCONCLUSIVE
    for c in ("L4", "L6"):                          # toy trends: decided (any of the outcomes), never missing
        assert status[c] in (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE), (c, verdict(CLAIMS[c], df).measured)
    assert df[df.claim.isin(["L4", "L6"])].scale.eq("toy").all()
    # verdicts come from the stored rows: one wrong value flips L1
    bad = df.copy()
    i = bad.index[bad.metric == "l1_step0_max_abs_diff"][0]
    bad.loc[i, "value"] = 1e-3
    assert verdict(CLAIMS["L1"], bad).status == NOT_REPRODUCED
    assert verdict(CLAIMS["L1"], bad[bad.claim != "L1"]).status == NOT_RUN


def test_smoke_memory_model_matches_measurement(smoke):
    df = read_results(smoke)
    mo = df[(df.metric == "memory_model_over_measured") & (param(df, "part") == "total")]
    assert set(mo.method) == {"full", "lora", "adapters"}
    assert ((mo.value - 1).abs() < 0.01).all()
    timings = read_results(smoke, timing=True)
    assert {"step_time_s", "latency_s"} <= set(timings.metric)
    assert not set(timings.metric) & set(df.metric)    # wall-clock never lands in results.csv


def test_bad_model_fails_fast(tmp_path):
    ctx = RunContext(profile=PROFILES["smoke"], seeds=(0,), out_dir=tmp_path, model="./no/such/folder")
    with pytest.raises(BenchError, match="does not exist"):
        lora.run(ctx)
    assert not any(tmp_path.iterdir())
