"""What the CLI hands a reproduction, and how it finds one.

A reproduction group is a package `reproductions/<group>/` (settings.py, the run's modules, report.py), named in
REPRO_GROUPS below. Its `settings.py` declares the contract's data (GROUP, CLAIMS, REGRESS, SETTINGS, and RANGES
for --set), and its `__init__.py` exports them with run and report:
    GROUP   = "lora"                       # results/<group>/, tox -e repro-<group>
    CLAIMS  = ("L1", "L2", ...)            # claim IDs it measures (bench.claims)
    REGRESS = [("metric_glob", atol, rtol[, "reason"]), ...]   # bands for `bench regress` (smoke profile)
    SETTINGS = {"smoke": Settings(...), "cpu": ..., "gpu": ...}   # profile -> frozen settings dataclass (--set)
    TAKES_MODEL = False                    # optional: the group measures fixed configs and refuses --model
    def run(ctx: RunContext) -> Recorder   # measure; rows go through bench.schema.Recorder
    def report(out_dir: Path) -> None      # write report.md and PNGs from the stored CSVs
The CLI calls run(), saves the Recorder atomically, calls report(), then regenerates results/README.md.
"""

from __future__ import annotations

import importlib
import os
import sys
import typing
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path

from tqdm.auto import tqdm

from bench import BenchError
from bench.profiles import Profile
from bench.schema import Recorder
from bench.values import check_value, field_range, parse_item

# The one registry of reproduction groups (reproductions/<group>/, results/<group>/, tox -e repro-<group>), in the
# order the reports list their runs and `bench regress` runs them; every other list of groups derives from it.
# Each claims-registry group is one of them (tests/test_groups.py); "decoder" has no verdict rules yet (its rows
# are reported, not decided: issue 35) and "methods" measures no claim (a supporting benchmark).
REPRO_GROUPS = ("lora", "rslora", "precision", "int8", "scale", "serving", "real", "decoder", "beyond", "methods")


@dataclass
class RunContext:
    profile: Profile
    seeds: tuple[int, ...]
    out_dir: Path
    model: str | None = None          # --model: ladder rung, local checkpoint folder, or hub id
    options: dict = field(default_factory=dict)

    def recorder(self, group: str, claims) -> Recorder:
        return Recorder(group=group, profile=self.profile.name, out_dir=self.out_dir, claims=list(claims))

    @staticmethod
    def progress(iterable=None, **kw):
        """A tqdm bar (stderr); quiet when BENCH_NO_PROGRESS=1 (tests)."""
        kw.setdefault("disable", os.environ.get("BENCH_NO_PROGRESS") == "1")
        kw.setdefault("dynamic_ncols", True)
        return tqdm(iterable, **kw)


def load_group(group: str):
    if group not in REPRO_GROUPS:
        raise BenchError(f"unknown reproduction group {group!r}; choose one of {', '.join(REPRO_GROUPS)}")
    try:
        return importlib.import_module(f"reproductions.{group}")
    except ModuleNotFoundError as e:
        if e.name == f"reproductions.{group}":
            raise BenchError(f"reproduction group {group!r} is not implemented yet") from None
        raise


def group_settings(module) -> dict:
    """A group's settings table, profile name -> settings dataclass (the package's SETTINGS); {} when it has none."""
    table = getattr(module, "SETTINGS", None)
    if not isinstance(table, dict) or not all(is_dataclass(v) for v in table.values()):
        return {}
    return table


def group_ranges(module) -> dict:
    """A group's declared ranges for its settings (the package's RANGES: field -> bench.values.Range); fields
    it does not name get their type's default (bench.values.default_range)."""
    ranges = getattr(module, "RANGES", None)
    if ranges is None and module is not None and hasattr(module, "__path__"):   # a package: its settings.py
        try:
            ranges = getattr(importlib.import_module(f"{module.__name__}.settings"), "RANGES", None)
        except ModuleNotFoundError:
            ranges = None
    return dict(ranges or {})


def check_settings(module, group: str, values: dict, cls=None) -> None:
    """Range-check {field: value} against the group's RANGES and the types' defaults (bench.values): BenchError,
    one line naming '--set <field>', what it got and what it accepts."""
    if cls is None:
        table = group_settings(module)
        if not table:
            return
        cls = type(next(iter(table.values())))
    ranges = group_ranges(module)
    names = {f.name for f in fields(cls)}
    for key, value in values.items():
        if key in names:
            check_value(f"--set {key}", value, field_range(cls, key, ranges))


def parse_sets(module, group: str, profile: str, sets: list[str] | None) -> dict:
    """`--set key=value` items parsed against the group's settings dataclass (see group_settings) into
    {field: value}, for ctx.options["settings"], each range-checked (check_settings). BenchError (one line,
    naming the allowed keys or the accepted range) on a bad item, before any work."""
    if not sets:
        return {}
    table = group_settings(module)
    if profile not in table:
        raise BenchError(f"{group}: has no settings that --set can change")
    cls = type(table[profile])
    hints = typing.get_type_hints(cls)
    out = dict(parse_item(item, hints, group) for item in sets)
    check_settings(module, group, out, cls)
    return out


def settings_with_overrides(ctx: RunContext, settings: dict, group: str):
    """The profile's settings dataclass with ctx.options["settings"] (field -> value) applied on top.

    Unknown fields and values out of range (check_settings) are a BenchError naming the field; lists become
    tuples (settings are frozen)."""
    base = settings[ctx.profile.name]
    over = dict((ctx.options or {}).get("settings", {}))
    known = {f.name for f in fields(base)}
    bad = sorted(set(over) - known)
    if bad:
        raise BenchError(f"{group}: unknown setting(s) {', '.join(bad)}; valid: {', '.join(sorted(known))}")
    over = {k: tuple(v) if isinstance(v, list) else v for k, v in over.items()}
    check_settings(sys.modules.get(f"reproductions.{group}"), group, over, type(base))
    return replace(base, **over)
