"""The beyond group (issue 33): settings checks, steps to target, the design from pilot lines, X2's memory rows, and
one tiny run end to end."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench import BenchError
from bench.profiles import get_profile
from bench.repro import RunContext
from bench.schema import Recorder
from reproductions.beyond import SETTINGS, design, settings_for
from reproductions.beyond.run import memory_rows, steps_to


def _ctx(tmp_path: Path, **sets) -> RunContext:
    return RunContext(profile=get_profile("smoke"), seeds=(0,), out_dir=tmp_path, options={"settings": sets})


def test_settings_reject_an_unknown_arm_and_a_repeated_run(tmp_path):
    with pytest.raises(BenchError, match="unknown arm"):
        settings_for(_ctx(tmp_path, runs=(("vera", 1),)))
    with pytest.raises(BenchError, match="distinct"):
        settings_for(_ctx(tmp_path, runs=(("lora", 1), ("lora", 1))))


def test_steps_to_target_is_the_first_evaluation_at_or_below_it():
    curve = [(25, 2.0), (50, 1.5), (75, 1.2)]
    assert steps_to(curve, 1.5, 100) == (50, 1)
    assert steps_to(curve, 1.0, 100) == (100, 0)       # never reached: the cap, flagged


def _line(arm, lr, seed, acc, cross):
    hist = [(24 + 25 * i, 2.0 if 25 * (i + 1) < cross else 1.0) for i in range(60)]
    return {"arm": arm, "r": 1, "lr": lr, "seed": seed, "wall": 10.0, "acc": acc, "hist": hist}


def test_noise_picks_loras_best_lr_and_measures_each_arm():
    s = SETTINGS["cpu"]                                           # target 1.5 nats/token
    lines = [_line("lora", 1e-2, k, 0.9 + 0.01 * k, 300 + 50 * k) for k in range(3)]
    lines += [_line("lora", 1e-3, 0, 0.5, 2000)]                                  # never below 1.5: worse
    lines += [_line("loraplus", 1e-2, k, 0.9, 150 + 25 * k) for k in range(3)]
    n = design.measure_noise(lines, s, "test")
    assert n["lr"] == 1e-2 and set(n["arms"]) == {"lora", "loraplus"}
    assert n["arms"]["lora"]["accuracy"]["mean"] == pytest.approx(0.91)
    assert n["arms"]["loraplus"]["log_steps"]["mean"] == pytest.approx(math.log(175), abs=0.01)
    rows = design.design(s, n)
    parts = {(d["claim"], d["part"]) for d in rows}
    assert ("X5", "converges faster") in parts and all(0 <= d["power"] <= 1 for d in rows)


def test_x2_rows_put_qlora_of_65b_under_48_gb_and_16_bit_lora_over(tmp_path):
    rec = Recorder(group="beyond", profile="smoke", out_dir=tmp_path, claims=["X2"])
    memory_rows(rec)
    peak = {r["method"]: r["value"] for r in rec.rows if r["metric"] == "x2_peak_bytes"}
    assert peak["qlora"] <= 48e9 < peak["lora"]
