"""bench.values: one parser and one range check for every user-set number. The battery runs NaN, +-inf, 0, a
negative and a huge value through every setting of every group (`--set`) and every method option (make_config,
what `bench memory --set` uses): each must end in a one-line BenchError naming the setting, or be accepted by a
Range that documents it (0 only with a stated meaning; never NaN, inf, a negative or a huge value)."""

from __future__ import annotations

import dataclasses
import math
import typing

import pytest

from bench import BenchError
from bench.cli import main
from bench.methods import METHODS, make_config
from bench.repro import REPRO_GROUPS, check_settings, group_ranges, group_settings, load_group, parse_sets
from bench.values import (COUNT, HUGE_FLOAT, HUGE_INT, MAGNITUDE, Range, check_value, field_range, parse_value,
                          scalar_type, settable)

BAD_TEXT = ("nan", "inf", "-inf", "0", "-1", "1e30", str(10**30))


def _numeric_fields(cls):
    hints = typing.get_type_hints(cls)
    return [(f.name, hints[f.name]) for f in dataclasses.fields(cls)
            if scalar_type(hints[f.name]) in (int, float) and settable(hints[f.name])]


def _accepted_legitimately(value, rng: Range) -> bool:
    """What a Range may accept of the bad values: 0 with a documented meaning, nothing else of BAD_TEXT."""
    items = value if isinstance(value, tuple) else (value,)
    for x in items:
        if not (isinstance(x, (int, float)) and math.isfinite(x)) or x < 0 or abs(x) >= 1e30:
            return False
        if x == 0 and not rng.zero:
            return False
    return True


def test_range_semantics():
    r = Range(0, 1, hi_open=True, zero="off")
    assert r.accepts(0) and r.accepts(0.5) and not r.accepts(1) and not r.accepts(-1e-9)
    assert not any(r.accepts(x) for x in (math.nan, math.inf, -math.inf, True, "0.5"))
    assert "0: off" in r.text() and "< 1" in r.text()
    with pytest.raises(ValueError, match="must say what 0 means"):
        Range(0, 1)
    assert COUNT.accepts(1) and not COUNT.accepts(0) and not COUNT.accepts(HUGE_INT + 1)
    assert MAGNITUDE.accepts(1e-12) and not MAGNITUDE.accepts(0) and not MAGNITUDE.accepts(HUGE_FLOAT * 2)


def test_check_value_is_one_line_naming_setting_value_and_range():
    with pytest.raises(BenchError) as e:
        check_value("--set lr", float("nan"), MAGNITUDE)
    assert str(e.value) == "--set lr: got nan; accepts a finite number > 0 and <= 1e+06"
    with pytest.raises(BenchError, match=r"^--set ranks: got 0 in \(4, 0\); accepts"):
        check_value("--set ranks", (4, 0), COUNT)
    check_value("x", None, COUNT)         # None (an Optional left unset) and strings are not numbers
    check_value("x", "abc", COUNT)


def test_parse_value_types():
    assert parse_value("nan", float, "w") != parse_value("nan", float, "w")       # parsed; the range rejects it
    assert parse_value("1,2", tuple[int, ...], "w") == (1, 2)
    assert parse_value("none", int | None, "w") is None
    assert parse_value("q_proj,v_proj", str | tuple[str, ...] | None, "w") == ("q_proj", "v_proj")
    with pytest.raises(BenchError, match="^w: expected int, got 'nan'$"):
        parse_value("nan", int, "w")


@pytest.mark.parametrize("group", REPRO_GROUPS)
def test_every_group_setting_rejects_bad_numbers_or_documents_them(group):
    module = load_group(group)
    table = group_settings(module)
    cls = type(table["smoke"])
    ranges = group_ranges(module)
    assert set(ranges) <= {f.name for f in dataclasses.fields(cls)}, f"{group}: RANGES names unknown settings"
    fields = _numeric_fields(cls)
    assert fields, group
    for name, _ in fields:
        rng = field_range(cls, name, ranges)
        for text in BAD_TEXT:
            try:
                got = parse_sets(module, group, "smoke", [f"{name}={text}"])
            except BenchError as e:
                msg = str(e)
                assert "\n" not in msg and msg.startswith(f"--set {name}: "), (group, name, text, msg)
                continue
            assert _accepted_legitimately(got[name], rng), f"{group}: --set {name}={text} accepted as {got[name]!r}"


@pytest.mark.parametrize("group", REPRO_GROUPS)
def test_every_profile_default_passes_its_own_ranges(group):
    """The checks never refuse what a profile itself runs (else a run would fail on its defaults)."""
    module = load_group(group)
    for profile, settings in group_settings(module).items():
        check_settings(module, group, {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)})


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_option_rejects_bad_numbers_or_documents_them(method):
    cls = METHODS[method]
    for name, hint in _numeric_fields(cls):
        rng = field_range(cls, name)
        for text in BAD_TEXT:
            try:
                value = parse_value(text, hint, f"--set {name}")
                make_config(method, **{name: value})
            except BenchError as e:
                msg = str(e)
                assert "\n" not in msg and name in msg, (method, name, text, msg)
                continue
            assert _accepted_legitimately(value, rng), f"{method}: {name}={text} accepted as {value!r}"


@pytest.mark.parametrize("item", ["lr_lora=nan", "lr_lora=inf", "lr_lora=-1", "lr_lora=0", "ft_steps=0",
                                  "ranks=4,-8", "l6_shuffle_seed=-1", "mem_batch=100000000000"])
def test_cli_refuses_a_bad_number_with_one_line_before_work(tmp_path, capsys, item):
    out = tmp_path / "never"
    assert main(["repro", "lora", "--profile", "smoke", "--seeds", "1", "--out", str(out), "--set", item]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    key = item.split("=")[0]
    assert len(err) == 1 and err[0].startswith(f"bench: error: --set {key}: got "), err
    assert not out.exists()


def test_memory_command_refuses_bad_numbers(capsys):
    for argv in (["--batch", "0"], ["--seq", "-1"], ["--set", "r=nan"], ["--set", "alpha=-inf"],
                 ["--set", "dropout=1e30"]):
        assert main(["memory", "smoke-a", "--method", "lora", *argv]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("bench: error: "), (argv, err)


def test_quantizer_options_reject_bad_numbers():
    """The quantizers' user-set numbers: LLM.int8()'s outlier threshold (every entry point) and the fixed-range
    quantizer's range r."""
    import torch

    from bench.numerics.int8_linear import Int8Linear, quantize_model
    from bench.numerics.quant import fixed_range_quantize, llm_int8_matmul, outlier_columns
    x, w = torch.randn(4, 8), torch.randn(3, 8)
    entry_points = {
        "Int8Linear": lambda t: Int8Linear(8, 3, threshold=t),
        "quantize_model": lambda t: quantize_model(torch.nn.Sequential(torch.nn.Linear(8, 3)), threshold=t),
        "outlier_columns": lambda t: outlier_columns(x, t),
        "llm_int8_matmul": lambda t: llm_int8_matmul(x, w, t),
    }
    for where, call in entry_points.items():
        for t in (math.nan, math.inf, -math.inf, -1.0, 1e30):
            with pytest.raises(BenchError, match=r"^int8 threshold: got .*; accepts a finite number >= 0"):
                call(t)
        call(0.0)          # documented: no outlier decomposition
        call(6.0)
    for r in (math.nan, math.inf, 0.0, -1.0):
        with pytest.raises(BenchError, match="finite range r > 0"):
            fixed_range_quantize(x, r)
