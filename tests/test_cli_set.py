"""`bench repro <group> --set key=value`: parsed by the group's settings types, checked before any work, fed to
settings_with_overrides; REPRO_GROUPS comes from the claims registry; the results folder when installed."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import pytest

from bench import BenchError
from bench.cli import main
from bench.profiles import get_profile
from bench.repro import REPRO_GROUPS, RunContext, group_settings, parse_sets, settings_with_overrides


@dataclass(frozen=True)
class Toy:
    ranks: tuple[int, ...] = (1, 2)
    methods: tuple[str, ...] = ("lora",)
    lr: float = 1e-3
    steps: int = 10
    fast: bool = False
    name: str = "x"
    limit: int | None = None
    shapes: tuple[tuple[int, int], ...] = ((1, 2),)


class Mod:
    SETTINGS = {"smoke": Toy(), "cpu": Toy()}


def test_values_parse_by_field_type():
    got = parse_sets(Mod, "toy", "smoke", ["ranks=1,2,4", "methods=lora,prefix", "lr=3e-4", "steps=7", "fast=true",
                                           "name=a=b", "limit=none"])
    assert got == {"ranks": (1, 2, 4), "methods": ("lora", "prefix"), "lr": 3e-4, "steps": 7, "fast": True,
                   "name": "a=b", "limit": None}
    assert parse_sets(Mod, "toy", "smoke", ["limit=5", "fast=0"]) == {"limit": 5, "fast": False}
    assert parse_sets(Mod, "toy", "smoke", None) == {}


@pytest.mark.parametrize("item, message", [
    ("rank=1", r"^--set rank: toy has no setting 'rank'; keys: fast, limit, lr, methods, name, ranks, steps$"),
    ("steps", r"^--set takes key=value, got 'steps'; keys for toy: "),
    ("steps=ten", r"^--set steps: expected int, got 'ten'$"),
    ("ranks=1,x", r"^--set ranks: expected int, got 'x'$"),
    ("fast=maybe", r"^--set fast: expected true or false"),
    ("shapes=1,2", r"cannot be set with --set"),
])
def test_bad_items_are_one_line_errors(item, message):
    with pytest.raises(BenchError, match=message):
        parse_sets(Mod, "toy", "smoke", [item])


def test_every_group_has_settings_that_set_reaches():
    """--set works for every group: each has a settings table, and settings_with_overrides applies the parsed
    values (checked on the smoke profile with the first settable int or tuple field)."""
    for group in REPRO_GROUPS:
        module = importlib.import_module(f"reproductions.{group}")
        table = group_settings(module)
        assert set(table) >= {"smoke", "cpu"}, group
        ctx = RunContext(profile=get_profile("smoke"), seeds=(0,), out_dir=None)
        base = settings_with_overrides(ctx, table, group)
        assert base == table["smoke"]
        field = next(f for f, v in vars(base).items() if type(v) is int and not isinstance(v, bool))
        over = parse_sets(module, group, "smoke", [f"{field}={getattr(base, field) + 1}"])
        ctx.options = {"settings": over}
        assert getattr(settings_with_overrides(ctx, table, group), field) == getattr(base, field) + 1


def test_repro_groups_come_from_the_registry():
    from bench.claims import CLAIMS, REAL_GROUP, on_track
    REAL_RULES = on_track(REAL_GROUP)
    from bench.repro import UNDECIDED_GROUPS
    assert set(REPRO_GROUPS) == {c.group for c in CLAIMS.values()} | {REAL_GROUP} | {"methods"} | set(UNDECIDED_GROUPS)
    assert REAL_RULES and set(REAL_RULES) <= set(CLAIMS)       # the real track decides registry claims
    assert REPRO_GROUPS[-1] == "methods" and len(set(REPRO_GROUPS)) == len(REPRO_GROUPS)


def test_cli_rejects_a_bad_set_before_any_work(tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["repro", "lora", "--profile", "smoke", "--out", str(out), "--set", "nope=1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench: error: --set nope: lora has no setting 'nope'; keys: ")
    assert not out.exists()


def test_results_dir_is_the_checkout_or_the_current_folder(tmp_path, monkeypatch):
    import bench.cli as cli
    assert cli.RESULTS_DIR == cli.Path(cli.__file__).resolve().parent.parent / "results"   # a checkout
    monkeypatch.setattr(cli, "__file__", str(tmp_path / "site" / "bench" / "cli.py"))     # as if installed
    monkeypatch.chdir(tmp_path)
    assert cli._results_dir() == tmp_path / "results"
