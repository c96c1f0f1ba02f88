"""reproductions/int8/natural.py: Q5's natural-outlier series (BOS-opened pretraining, census at checkpoints) on the
smoke ladder: its rows, the cache, and the rule parts that read them."""

import json
import time

import pytest

from bench.claims import CLAIMS
from bench.ladder import get_spec
from bench.ladder.build import build_world_and_tokenizer
from bench.report import INCONCLUSIVE, verdict
from bench.schema import Recorder, param
from reproductions.int8 import natural
from reproductions.int8.settings import SETTINGS

S = SETTINGS["smoke"]


def test_bos_rows_and_blocks_open_with_bos():
    spec = get_spec("smoke-a")
    world, tok = build_world_and_tokenizer(spec)
    rows = natural.bos_rows(world, tok, spec)
    assert all(r["input_ids"][0] == tok.bos_token_id and len(r["input_ids"]) == spec.seq_len for r in rows)
    assert len(rows) * (spec.seq_len - 1) >= spec.tokens > (len(rows) - 1) * (spec.seq_len - 1)
    assert sum(t == tok.bos_token_id for r in rows for t in r["input_ids"]) == len(rows)   # only at position 0
    blocks = natural.bos_blocks(world, tok, 64, 8, 2)
    assert len(blocks) == 2 and all(b.shape == (8, 64) and (b[:, 0] == tok.bos_token_id).all() for b in blocks)


def test_checkpoint_steps():
    assert natural.checkpoint_steps(119) == [7, 15, 30, 60, 119]
    assert natural.checkpoint_steps(3) == [1, 2, 3]          # distinct, the last step always there
    assert natural.checkpoint_steps(1) == [1]


@pytest.fixture(scope="module")
def series_rows():
    rec = Recorder(group="int8", profile="smoke", out_dir=None)
    t0 = time.perf_counter()
    series = natural.natural_rows(rec, "smoke", S)
    return rec.frame(), series, time.perf_counter() - t0


def test_rows_per_rung_and_checkpoint(series_rows):
    df, series, _ = series_rows
    assert [r["rung"] for r in series] == ["smoke-a", "smoke-b"]
    ppl = df[df["metric"] == "natural_heldout_ppl"]
    n = len(natural.CHECKPOINTS) + 1                                      # + the initialised model (step 0)
    assert len(ppl) == 2 * n and set(ppl["model"]) == {"smoke-a+bos", "smoke-b+bos"}
    for model, g in ppl.groupby("model"):
        steps = param(g, "step").tolist()
        assert steps[0] == 0 and steps == sorted(steps) and steps[-1] == param(g, "of_steps").iloc[0]
        assert g["value"].iloc[-1] < g["value"].iloc[1] < g["value"].iloc[0]   # pretraining lowers held-out ppl
        hashes = [json.loads(i)["weights_sha256"] for i in g["info"]]
        assert len(set(hashes)) == n                                      # each checkpoint's own weights
    assert len(df[df["metric"] == "natural_train_loss"]) == 2 * (n - 1)   # no training loss before training
    for k in ("kurtosis_median", "kurtosis_median_excl_bos", "max_abs", "layers_affected"):
        assert len(df[df["metric"] == f"natural_lncensus_{k}"]) == 2 * n, k
    kl = df[df["metric"] == "natural_kl_per_token"]
    assert set(kl["method"]) == set(natural.KL_METHODS) and (kl["value"] > 0).all()
    info = json.loads(kl["info"].iloc[0])
    assert len(info["weights_sha256"]) == 64                              # the series' weights, not the ladder's
    rho = df[df["metric"] == "natural_spearman_kurtosis_vs_ppl"]
    assert len(rho) == 1 and -1.0 <= rho["value"].iloc[0] <= 1.0 and param(rho, "n_points").iloc[0] == 10
    assert df[df["metric"] == "natural_n_rungs"]["value"].iloc[0] == 2


def test_cached_series_is_reused_and_keyed_on_settings(series_rows, monkeypatch):
    _, series, _ = series_rows
    path, key = natural._cache_file("smoke-a", S)
    assert json.loads(path.read_text())["key"] == key
    t0 = time.perf_counter()
    again = natural.grow(("smoke-a", S))
    assert time.perf_counter() - t0 < 2.0 and again == series[0]           # read back, not retrained
    from dataclasses import replace
    assert natural._cache_file("smoke-a", replace(S, eval_batches=1))[1] != key


def test_q5_series_parts_read_the_rows(series_rows):
    """The series parts find their rows; two smoke rungs cannot decide the size part (precondition: 5 rungs), and
    without an outlier dim neither series part is decided."""
    df, _, _ = series_rows
    df = df.assign(source="results")
    v = verdict(CLAIMS["Q5"], df)
    assert v.parts["natural outliers grow with size"] == INCONCLUSIVE
    assert "natural_n_rungs" in v.reasons["natural outliers grow with size"]
    # ppl fell, but no systematic outlier dim formed in two smoke rungs: the trend says nothing about outliers
    assert v.parts["natural outliers grow as perplexity falls"] == INCONCLUSIVE
    assert "natural_lncensus_n_outlier_dims" in v.reasons["natural outliers grow as perplexity falls"]
