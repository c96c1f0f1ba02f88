"""reproductions/precision/amp.py: M3 through bench.train -- the loop's settings, the gradient census, the
saved-bytes probe, and run_m3 with a model factory."""

import math
from dataclasses import replace

import pytest
import torch

from bench.numerics.toy import MarkovData, ToyLMConfig, markov_batches, tiny_gpt2
from bench.schema import Recorder
from bench.train import collate, lr_at
from reproductions.precision import PRECISIONS, Settings, run_m3
from reproductions.precision.amp import GradCensus, flush_shares, saved_bytes, train_config, train_precision

TINY = ToyLMConfig(vocab=32, seq_len=16, d_model=16, n_layer=1, n_head=2)


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("BENCH_NO_PROGRESS", "1")


def _settings(**kw):
    return Settings(TINY, **{"steps": 4, "batch_size": 2, "eval_batches": 1, "measure_every": 2,
                             "data": MarkovData(vocab=32), **kw})


def _rows(s, seed=0):
    return [{"input_ids": ids} for b in markov_batches(s.data, s.steps, s.batch_size, TINY.seq_len, seed) for ids in b]


def test_train_config_is_the_groups_recipe():
    s = _settings(steps=10, lr=1e-3)
    cfg = train_config("fp16_scaled", s, "cpu")
    assert (cfg.autocast, cfg.loss_scale, cfg.loss_scale_cpu, cfg.init_scale) == ("float16", True, True, 2.0**16)
    assert cfg.grad_clip is None and not cfg.shuffle and cfg.betas == (0.9, 0.999) and cfg.weight_decay == 0.0
    # torch's CosineAnnealingLR(T_max=steps): lr * (1 + cos(pi * step / steps)) / 2, never 0 within the run
    assert [lr_at(k, cfg) for k in range(10)] == [1e-3 * 0.5 * (1 + math.cos(math.pi * k / 10)) for k in range(10)]
    assert train_config("fp16", s, "cpu").loss_scale is False
    assert train_config("fp32", s, "cpu").autocast is None and train_config("bf16", s, "cpu").autocast == "bfloat16"


def test_flush_shares_of_known_values():
    g = torch.tensor([1e-9, 1e-3, 0.0, 0.5])          # 1e-9 < 2^-25: flushed unless scaled; zeros not counted
    assert flush_shares([g], 2.0**16) == (pytest.approx(1 / 3), 0.0, 0.0)
    assert flush_shares([g], 2.0**20)[2] == pytest.approx(1 / 3)   # 0.5 * 2^20 overflows FP16 (max 65504)
    assert flush_shares([torch.zeros(3)], 2.0) == (0.0, 0.0, 0.0)


def test_census_measures_every_n_steps_and_the_last():
    model = torch.nn.Linear(2, 2, bias=False)
    model.weight.grad = torch.tensor([[0.0, 1e-9], [1e-3, 2e-3]])
    census = GradCensus(every=3, steps=5, loss_scale=2.0**16, flush=True)
    for step in range(5):
        census(step, model, torch.tensor(float(step)))
    assert census.curve == [(0, 0.0), (3, 3.0), (4, 4.0)]
    assert census.zero_share == [0.25] * 3 and census.mean_shares() == (pytest.approx(1 / 3), 0.0, 0.0)


def test_saved_bytes_count_activations_not_parameters_and_shrink_under_autocast():
    s = _settings()
    model = tiny_gpt2(TINY, seed=0)
    batch = collate(_rows(s)[:2])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fp32, bf16 = saved_bytes(model, batch, "fp32", "cpu"), saved_bytes(model, batch, "bf16", "cpu")
    assert 0 < bf16 < fp32
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())   # a probe, not a step


def test_train_precision_scales_the_loss_on_cpu():
    s = _settings()
    evals = markov_batches(s.data, 1, 2, TINY.seq_len, seed=9)
    r = train_precision("fp16_scaled", s, tiny_gpt2(TINY, seed=0), _rows(s), evals, "cpu")
    assert r["final_scale"] == 2.0**16 and r["diverged_at"] is None and math.isfinite(r["final_loss"])
    assert [step for step, _ in r["census"].curve] == [0, 2, 3] and not r["census"].shares   # census: FP32 only


def test_run_m3_accepts_a_model_factory(tmp_path):
    s = _settings(steps=3, measure_every=1)
    made = []

    def factory(seed):
        made.append(seed)
        return tiny_gpt2(ToyLMConfig(vocab=32, seq_len=16, d_model=24, n_layer=1, n_head=2), seed=seed)

    rec = Recorder(group="precision", profile="smoke", out_dir=tmp_path)
    out = run_m3(rec, s, seeds=(0, 1), model_factory=factory, model_name="rung-x")
    assert made == [0] * 4 + [1] * 4 + [0] * 3 + [1] * 3          # then the underflow regime's three precisions
    df = rec.frame()
    assert set(df["model"]) == {"rung-x"} and len(out) == 8 + 6 and set(df["method"]) >= set(PRECISIONS)
    flush = df[df["metric"] == "m3_grad_flush_share"]
    assert len(flush) == 4 and (flush["value"] >= 0).all() and (flush["value"] <= 1).all()
    saved = df[df["metric"] == "m3_saved_bytes_ratio_over_fp32"]
    assert (saved["value"] < 1).all()          # autocast keeps 16-bit copies for backward


def test_the_underflow_regime_flushes_gradients_that_loss_scaling_keeps(tmp_path):
    """LossMultiplied scales every gradient (the eval loss is not multiplied); in that regime FP16 flushes most
    gradient values of the FP32 run unless the loss is scaled, and the rows the M3 rule reads are recorded."""
    from reproductions.precision.amp import LossMultiplied
    s = _settings(steps=3, measure_every=1)
    model = tiny_gpt2(TINY, seed=0)
    batch = collate(_rows(s)[:2])
    plain = model(**batch).loss
    assert torch.allclose(LossMultiplied(model, 2.0**-16)(**batch).loss, plain * 2.0**-16)
    rec = Recorder(group="precision", profile="smoke", out_dir=tmp_path)
    run_m3(rec, s, seeds=(0,))
    df = rec.frame()
    flush = df[df["metric"] == "m3_underflow_flush_share"].set_index("method")["value"]
    assert flush["fp16"] > 0.3 and flush["fp16_scaled"] < 0.05
    assert set(df[df["metric"] == "m3_underflow_final_loss"]["method"]) == {"fp32", "fp16", "fp16_scaled"}
    off = Recorder(group="precision", profile="smoke", out_dir=tmp_path / "off")
    run_m3(off, replace(s, underflow_loss_multiplier=1.0), seeds=(0,))
    assert not off.frame()["metric"].str.startswith("m3_underflow").any()
