"""reproductions/int8/models.py on a tiny random GPT-2 and Markov tokens: the perplexity table and every row
family model_rows writes (planting, perplexity, census, layer error, sweep, Q6)."""

import copy
from dataclasses import replace

import pytest
import torch

from bench.numerics.int8_linear import METHODS
from bench.numerics.toy import MarkovData, ToyLMConfig, markov_batches, tiny_gpt2
from bench.schema import Recorder
from reproductions.int8 import SETTINGS, model_rows, ppl_table


@pytest.fixture(scope="module")
def tiny():
    model = tiny_gpt2(ToyLMConfig(vocab=64, seq_len=16, d_model=32, n_layer=1, n_head=2), seed=0)
    return model, markov_batches(MarkovData(vocab=64), 2, 4, 16, seed=0)


def test_ppl_table_on_a_tiny_random_model(tiny):
    model, batches = tiny
    before = copy.deepcopy(model.state_dict())
    rows = ppl_table([("tiny", model, batches)])
    assert [r["method"] for r in rows] == ["fp32", *METHODS]
    assert rows[0]["ratio_over_fp32"] == 1.0
    assert all(r["ppl"] > 1 and abs(r["ratio_over_fp32"] - 1) < 0.05 for r in rows)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())   # the model is not modified


def test_model_rows_writes_every_family(tiny, tmp_path):
    model, batches = tiny
    rec = Recorder(group="int8", profile="smoke", out_dir=tmp_path)
    s = replace(SETTINGS["smoke"], sweep_scales=(2.0, 8.0))
    model_rows(rec, [("tiny", model, batches)], 0, s, "markov")
    df = rec.frame()
    assert df[df["metric"] == "plant_fp32_max_abs_diff"]["value"].iloc[0] < 1e-4   # planting keeps FP32's function
    assert len(df[df["metric"] == "fp32_ppl"]) == 2                                # plain and planted
    assert len(df[df["metric"] == "int8_ppl_ratio_absmax_over_zeropoint"]) == 2
    assert len(df[df["metric"] == "layer_rel_err_mlp_input_proj"]) == 2 * 3
    assert len(df[df["metric"] == "planted_scale_sweep_ppl_ratio_over_fp32"]) == 2 * 3
    assert len(df[df["metric"] == "census_n_outlier_dims_found_minus_planted"]) == 2   # planted: both sources
    assert df[df["metric"] == "int8_storage_minus_accounting_bytes"]["value"].iloc[0] == 0
